"""One writer per folder: an exclusive lock file beside it, and signals held at a commit point.

``FolderLock(target)`` creates ``.<name>.lock`` next to ``target``, atomically (the file
is written under a temporary name and hard-linked to the lock name, which fails if
another process holds it), holding the holder's pid, host and start time. A second
writer gets a :class:`~doodlelab.errors.UserError` naming the holder. A lock whose
holder is gone (same host, pid not running) is stale: it is taken over, with a note.
Locks of another host cannot be checked and are left alone; the message says how to
remove one by hand.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from doodlelab.errors import UserError


def _alive(pid: int) -> bool:
    """Return whether a process ``pid`` runs on this host (True when that cannot be told).

    A zombie (killed, not yet reaped by its parent) has ended: it writes nothing more.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS) or no access: the signal said it exists
    return stat[stat.rindex(")") + 2 :].split(" ", 1)[0] not in ("Z", "X")


class FolderLock:
    """An exclusive, stale-aware lock on ``target`` (a folder that may not exist yet)."""

    def __init__(self, target: str | Path) -> None:
        target = Path(target)
        self.target = target
        self.path = target.parent / f".{target.name}.lock"
        self.held = False

    def holder(self) -> dict[str, Any] | None:
        """Return the lock file's ``{"pid", "host", "since"}``, or None if there is none."""
        try:
            value = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def acquire(self) -> FolderLock:
        """Take the lock, or raise UserError naming the process that holds it."""
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(me), encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {self.target} ({exc.strerror or exc})") from None
        try:
            for _ in range(3):
                try:
                    os.link(tmp, self.path)
                except FileExistsError:
                    if not self._clear_stale():
                        raise self._busy() from None
                    continue
                self.held = True
                return self
            raise self._busy()
        finally:
            tmp.unlink(missing_ok=True)

    def _clear_stale(self) -> bool:
        """Remove the lock if its holder has gone; return whether it was removed."""
        holder = self.holder()
        if holder is None:
            return True  # released meanwhile
        same_host = holder.get("host") == socket.gethostname()
        pid = holder.get("pid")
        if not (same_host and isinstance(pid, int) and not _alive(pid)):
            return False
        # rename first: of two processes that both found it stale, only one removes it
        grave = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}")
        try:
            os.replace(self.path, grave)
        except FileNotFoundError:
            return True
        try:
            taken = json.loads(grave.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            taken = None
        if taken != holder:  # another process took the lock in between: give it back
            try:
                os.link(grave, self.path)
            finally:
                grave.unlink(missing_ok=True)
            return False
        grave.unlink(missing_ok=True)
        print(f"doodlelab: took over the stale lock of {self.target} (pid {pid} has gone)", file=sys.stderr)
        return True

    def _busy(self) -> UserError:
        holder = self.holder() or {}
        who = (f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
               if holder else "another process")
        return UserError(f"{self.target} is being written by {who}; wait for it to finish, stop it, "
                         f"or remove {self.path} if that process is gone")

    def release(self) -> None:
        """Give the lock back (only if this object holds it)."""
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


@contextmanager
def signals_held() -> Iterator[None]:
    """Run the block with SIGINT and SIGTERM held back (delivered after it), in the main thread."""
    held = {signal.SIGINT, signal.SIGTERM}
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
