"""Errors that the CLI turns into one clear line instead of a traceback."""


class VatError(Exception):
    """Base class: a problem the user can fix (bad input, bad params)."""


class DataError(VatError):
    """A data file is missing, unreadable or malformed; the message names the file."""


class ParamsError(VatError):
    """params.yaml has an unknown, missing or invalid key; the message names the key."""
