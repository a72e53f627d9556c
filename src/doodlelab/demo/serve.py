"""``doodlelab demo RUN_DIR ...``: load the runs, bind the address, serve the app with uvicorn.

The socket is bound here, before uvicorn starts, so a busy port or a bad host is one
line and exit 2 (uvicorn alone logs it and exits 1). Its listen backlog holds a burst
of requests (the old ``http.server`` backlog of 5 reset 10-26 of 50).

Heavy imports (FastAPI, numpy, the tasks, cairo) happen inside the functions, so the
CLI can import :func:`add_parser` cheaply.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from typing import Any

from doodlelab.errors import UserError

BACKLOG = 2048  # pending connections the kernel keeps for us (uvicorn's default too)


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """Return a listening TCP socket on ``host:port`` (port 0: a free one); UserError if impossible."""
    if not 0 <= int(port) <= 65535:
        raise UserError(f"--port {port}: expected 0..65535 (0 picks a free port)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, int(port)), family=family, backlog=BACKLOG)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                        "choose another --port or --host") from None


def url_of(sock: socket.socket) -> str:
    """Return the page's address for a bound socket, e.g. ``http://127.0.0.1:8000/``."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in str(host) else f"http://{host}:{port}/"


def make_server(app: Any) -> Any:
    """Return a quiet uvicorn server for ``app`` (no access log); run it with ``.run(sockets=[...])``."""
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                         timeout_keep_alive=5, lifespan="off"))


def serve(run_dirs: list[str | Path], host: str = "127.0.0.1", port: int = 8000,
          open_browser: bool = False) -> None:
    """Load the runs, print the URL and serve the demo until Ctrl-C."""
    try:
        from doodlelab.demo.app import create_app
    except ImportError as exc:
        raise UserError(f"the demo needs FastAPI and uvicorn ({exc}); "
                        "install them with pip install -e '.[demo]'") from None
    from doodlelab.demo.models import load_models

    models = load_models(run_dirs)
    sock = bind(host, port)
    try:
        for m in models:
            acc = f", test accuracy {m.accuracy:.3f}" if m.accuracy is not None else ""
            print(f"  {m.name}: tta={'on' if m.tta else 'off'}{acc}")
        if host not in ("127.0.0.1", "localhost", "::1"):
            print(f"warning: listening on {host}: other machines may reach this page", file=sys.stderr)
        print(f"doodlelab demo: open {url_of(sock)} (Ctrl-C stops)", flush=True)
        if open_browser:
            import webbrowser

            webbrowser.open(url_of(sock))
        try:
            make_server(create_app(models)).run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn shuts down gracefully, then re-raises Ctrl-C
            pass
        print("doodlelab demo: stopped")
    finally:
        sock.close()


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``demo RUN_DIR [RUN_DIR ...] [--host] [--port] [--open]`` to a subparsers object."""
    p = subparsers.add_parser("demo", help="a web page where you draw and every trained run answers",
                              description="Serve a page where a person draws a doodle with mouse, pen "
                              "or finger, and every given run predicts it and shows why.")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="finished run folders")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--open", dest="open_browser", action="store_true", help="open the page in a browser")
    return p


def command(args: argparse.Namespace) -> int:
    """Run ``doodlelab demo``; return the exit status (UserError propagates to the CLI)."""
    serve(args.run_dirs, args.host, args.port, open_browser=getattr(args, "open_browser", False))
    return 0
