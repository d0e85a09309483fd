"""Browsing the pseudo-labels in the FiftyOne App: :mod:`vat.browse.dataset` builds the dataset,
:mod:`vat.browse.app` serves it."""
