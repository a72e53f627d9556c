"""A fake of the official Quick, Draw! bucket on 127.0.0.1, for the fetch tests (never the internet).

It serves ``<PREFIX><name>.npy`` from ``files``: real bytes, or a :class:`VirtualClass` whose
rows are computed on demand, so full-size class files (100k+ rows) cost no memory. It
honours ``Range: bytes=a-b`` and ``bytes=a-`` unless told not to, can cut answers short,
omit Content-Length, fail, or wait, and counts every body byte it sends.
"""

from __future__ import annotations

import io
import re
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

PREFIX = "/qd/"
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


class VirtualClass:
    """The bytes of a uint8 (rows, 784) .npy file whose row i is :meth:`row` (i), made on demand."""

    def __init__(self, rows: int, label: int) -> None:
        self.rows, self.label = rows, label
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False,
                                                    "shape": (rows, 784)})
        self.header = buf.getvalue()

    def pixels(self, ids: np.ndarray) -> np.ndarray:
        """Return rows ``ids`` (n,) as uint8 (n, 784): pixel 0 the label, 1..3 the row id, then sparse
        strokes (a few pixels lit, where depends on row and label, mostly black like a drawing)."""
        ids = np.asarray(ids, dtype=np.int64)
        j = np.arange(784)
        lit = (j + 3 * ids[:, None] + 40 * self.label) % 9 == 0
        out = np.where(lit, 255, 0).astype(np.uint8)
        out[:, 0] = self.label
        for k in range(3):
            out[:, 1 + k] = (ids >> (8 * k)) & 255
        return out

    def __len__(self) -> int:
        return len(self.header) + self.rows * 784

    def __getitem__(self, part: slice) -> bytes:
        start, stop, _ = part.indices(len(self))
        head = self.header[start:stop]
        lo = max(start - len(self.header), 0)
        hi = max(stop - len(self.header), 0)
        if hi <= lo:
            return head
        first, last = lo // 784, -(-hi // 784)
        body = self.pixels(np.arange(first, last)).tobytes()
        return head + body[lo - first * 784 : hi - first * 784]


def row_ids(images: np.ndarray) -> np.ndarray:
    """Return the row id each :class:`VirtualClass` image (N, 784) or (N, 28, 28) carries."""
    flat = images.reshape(images.shape[0], 784).astype(np.int64)
    return flat[:, 1] | (flat[:, 2] << 8) | (flat[:, 3] << 16)


class FakeQuickDraw:
    """What the test server serves, how it misbehaves, and the requests it saw."""

    def __init__(self) -> None:
        self.files: dict[str, bytes | VirtualClass] = {}  # class name -> <name>.npy
        self.requests: list[tuple[str, str | None]] = []  # (raw path, Range header)
        self.ranges = True  # honour Range requests with 206
        self.status: int | None = None  # answer every request with this error status
        self.cut_after: int | None = None  # send only this many body bytes, then hang up
        self.content_length = True  # send a Content-Length header
        self.delay = 0.0  # seconds to wait before answering
        self.sent = 0  # body bytes sent so far
        self.url = ""
        self.lock = threading.Lock()


def _handler(state: FakeQuickDraw) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _data(self) -> bytes | VirtualClass | None:
            path = urllib.parse.unquote(self.path)
            if not path.startswith(PREFIX) or not path.endswith(".npy"):
                return None
            return state.files.get(path[len(PREFIX):-len(".npy")])

        def do_GET(self) -> None:
            state.requests.append((self.path, self.headers.get("Range")))
            if state.delay:
                time.sleep(state.delay)
            if state.status:
                self.send_error(state.status)
                return
            data = self._data()
            if data is None:
                self.send_error(404)
                return
            size, start, stop, code = len(data), 0, len(data), 200
            asked = _RANGE.fullmatch(self.headers.get("Range") or "")
            if asked and state.ranges:
                start = int(asked[1])
                stop = min(int(asked[2]) + 1, size) if asked[2] else size
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                code = 206
            body = data[start:stop]
            self.send_response(code)
            if code == 206:
                self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
            if state.content_length:
                self.send_header("Content-Length", str(len(body)))
            else:
                self.close_connection = True
            self.end_headers()
            body = body if state.cut_after is None else body[: state.cut_after]
            try:
                self.wfile.write(body)
            except OSError:
                return
            with state.lock:
                state.sent += len(body)

    return Handler


def start_server() -> tuple[FakeQuickDraw, ThreadingHTTPServer, threading.Thread]:
    """Start a threaded fake bucket on an ephemeral port of 127.0.0.1; return (state, server, thread)."""
    state = FakeQuickDraw()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}{PREFIX.rstrip('/')}"
    return state, httpd, thread


def stop_server(httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
    """Shut the fake bucket down."""
    httpd.shutdown()
    httpd.server_close()
    thread.join()
