"""Serving a FiftyOne dataset in the App, and stopping every server process it started."""

from __future__ import annotations

import atexit
import contextlib
import signal
import socket
import threading
import time
from typing import TYPE_CHECKING

from vat.browse.dataset import _quiet
from vat.errors import VatError

if TYPE_CHECKING:
    import fiftyone as fo
    import psutil

# ---------------------------------------------------------------------------------------------
# the App server and its cleanup

_servers: dict[int, list[psutil.Process]] = {}  # port -> the server's processes, wrapper first
_cleanup_installed = False


def _server_processes(port: int) -> list[psutil.Process]:
    """FiftyOne's server wrapper (fiftyone/service/main.py --51-service server ...) and its children."""
    import psutil

    found = []
    for child in psutil.Process().children():
        try:
            cmd = child.cmdline()
            if "--51-service" in cmd and "server" in cmd and str(port) in cmd:
                found += [child, *child.children(recursive=True)]
        except psutil.Error:
            pass
    return found


def server_pids() -> list[int]:
    """PIDs of the App servers this process started and has not stopped yet."""
    return [p.pid for procs in _servers.values() for p in procs]


def _install_cleanup() -> None:
    """Stop the servers at exit, and turn SIGTERM / SIGHUP into a normal exit so that happens."""
    global _cleanup_installed
    if _cleanup_installed:
        return
    _cleanup_installed = True
    atexit.register(stop)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:  # leave a handler someone else set alone
            signal.signal(sig, _exit_on_signal)


def _exit_on_signal(signum, frame) -> None:
    raise SystemExit(128 + signum)


def port_in_use(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex((address, port)) == 0


def app_url(dataset_name: str, port: int, address: str = "127.0.0.1") -> str:
    from urllib.parse import quote

    return f"http://{address}:{port}/datasets/{quote(dataset_name)}"


def launch(dataset: fo.Dataset, port: int, address: str = "127.0.0.1", wait: bool = False) -> fo.Session:
    """Serve ``dataset`` in the App at http://address:port (remote mode: no browser is opened).

    The server's processes are recorded and ended by :func:`stop`, which also runs at exit
    and on SIGTERM / SIGHUP. With ``wait`` this blocks until Ctrl-C (or until the server
    dies), then stops the server; the returned session is then closed.
    """
    if port_in_use(address, port):
        # FiftyOne would attach to whatever answers there instead of starting a server
        raise VatError(f"port {port} on {address} is in use; pass another --port")
    import fiftyone as fo

    _install_cleanup()
    with _quiet():
        session = fo.launch_app(dataset, port=port, address=address, remote=True)
    _servers[port] = _server_processes(port)
    if wait:
        serve(session)
    return session


def serve(session: fo.Session) -> None:
    """Block until Ctrl-C or until the session's server exits, then stop it."""
    procs = _servers.get(session.server_port, [])
    try:
        while not procs or any(_alive(p) for p in procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop(session)


def _alive(p: psutil.Process) -> bool:
    import psutil

    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop(session: fo.Session | None = None, timeout: float = 10.0) -> None:
    """Close ``session`` (if given) and end every recorded server process still running."""
    import psutil

    if session is not None:
        session._disable_wait_warning = True  # FiftyOne prints a hint when closed within 2.5 s
        # close() waits for FiftyOne's own shutdown of the server; never let it hang us
        closer = threading.Thread(target=session.close, daemon=True)
        closer.start()
        closer.join(timeout)
    procs = [p for port in list(_servers) for p in reversed(_servers.pop(port))]  # children first
    alive = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            if p.is_running():
                p.terminate()
                alive.append(p)
    _, alive = psutil.wait_procs(alive, timeout=5)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
