"""``semstyle studio``: start the doodle studio on this machine and open it in the browser.

    semstyle studio                       # http://127.0.0.1:8765, results in runs/studio/runs/
    semstyle studio --port 9000 --root my-doodles --no-browser
    python -m semstyle.studio             # the same without the semstyle command

The web server (Starlette + uvicorn) is the ``studio`` extra (``pip install '.[studio]'``); this module imports
it only when the command runs, so the rest of semstyle never needs it.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import SemstyleError, check

# socket, threading, webbrowser and the web server are imported when the command runs: `semstyle --help` and the
# other commands start without them.

DEFAULT_PORT = 8765
EXTRA_HINT = "the studio needs its extra: pip install 'semstyle[studio]' (or, in a checkout, make studio)"


def _require_extra() -> None:
    missing = []
    for module, package in (
        ("starlette", "starlette"),
        ("uvicorn", "uvicorn"),
        ("python_multipart", "python-multipart"),
    ):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    check(not missing, f"{', '.join(missing)} not installed; {EXTRA_HINT}", SemstyleError)


def _check_port(host: str, port: int) -> None:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise SemstyleError(
                f"--port {port}: cannot listen on {host}:{port} ({e.strerror}); "
                "another program uses it: pick another with --port"
            ) from None


def serve(
    root: str = "runs/studio",
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    open_browser: bool = True,
    styles: str | None = None,
) -> None:
    """Run the studio until interrupted."""
    _require_extra()
    import ipaddress
    import threading
    import webbrowser

    import uvicorn

    from .app import LOOPBACK_HOSTS, create_app

    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        print(
            f"semstyle studio: warning: listening on {host}, not on this machine only: anyone who can reach it "
            "can upload files and start runs",
            file=sys.stderr,
        )
    check(0 <= port <= 65535, f"--port: must be 0-65535, got {port}")
    _check_port(host, port)
    app = create_app(root, styles, hosts=LOOPBACK_HOSTS if loopback else None)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    print(f"semstyle studio: {url} (results in {app.state.store.root / 'runs'}); Ctrl+C stops it", flush=True)
    if open_browser:
        threading.Timer(1.0, lambda: webbrowser.open(url)).start()
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)


class BackgroundServer:
    """Serve an ASGI app from a thread on ``host`` and a free port (tests, scripts): ``with
    BackgroundServer(create_app(root)) as url:`` gives ``url = "http://127.0.0.1:PORT"`` while the block runs."""

    def __init__(self, app, host: str = "127.0.0.1"):
        import socket
        import threading

        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        import time

        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            check(
                self.thread.is_alive() and time.monotonic() < deadline,
                "studio: the server did not start",
                SemstyleError,
            )
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def _studio(args) -> None:
    serve(args.root, args.host, args.port, not args.no_browser, args.styles)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--root",
        default="runs/studio",
        help="the studio's folder: styles, doodles and run folders (default runs/studio)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--no-browser", action="store_true", help="do not open the page in a browser")
    p.add_argument("--styles", help="folder of paintings to offer (default the bundled ones)")


def add_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "studio", help="paint a doodle in the browser and watch it become a painting (needs the studio extra)"
    )
    add_arguments(p)
    p.set_defaults(func=_studio)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m semstyle.studio", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        _studio(args)
    except SemstyleError as e:
        print(f"semstyle: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
