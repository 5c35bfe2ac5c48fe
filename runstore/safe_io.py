"""Writing that survives crashes and company: whole files or none, one writer per run folder, children that end
with their parent, and SIGTERM treated like Ctrl-C.

- `atomic_write_bytes` / `atomic_write_text`: the bytes go to a hidden temporary file beside the target, are
  flushed to disk and renamed over it (`os.replace`), so a reader, a full disk or a crash leaves the old content
  or the new, never a part. Every output of the toolkit goes through them (run tables, run.json, reports, CSVs).
- `FolderLock`: an exclusive advisory lock (`flock`) on `<folder>/.lock` for as long as a writer works on a run
  folder; the file names the holder (pid, host, start time) so a second writer is refused in one sentence. The
  kernel releases the lock when the holder dies, however it dies, so a stale lock file (left by kill -9) locks
  nothing and is taken over by the next writer; a writer that finishes removes it.
- `child_process_options()`: keyword arguments for `subprocess.Popen`/`run` that make the child receive SIGTERM
  when its parent dies (Linux `PR_SET_PDEATHSIG`), so ncu, the workers and the Streamlit server do not outlive a
  killed collector or dashboard.
- `stderr_to(path)`: file descriptor 2 into a file for a block (a compiler's IR dump goes there, not to the terminal).
- `sigterm_as_interrupt()`: within the block, SIGTERM raises `Terminated` (a KeyboardInterrupt), so a collector
  stopped by `kill` records its run as interrupted and stops its children exactly as Ctrl-C does.

This module depends on nothing of the toolkit and nothing beyond the standard library.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; reading runs works there, writing them is for the GPU machine
    fcntl = None

LOCK_NAME = ".lock"


# ---- whole files or none ----------------------------------------------------------------------------------------
def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temporary_name(path: Path) -> Path:
    """The hidden temporary file `path` is written through (readers and writers ignore `.*.tmp-*` names)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that `path` holds either its old content or all of `data`, never a part; on any
    error (a full disk, a read-only folder) the temporary file is removed and the OSError raised."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | os.PathLike, obj: dict) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode())


# ---- one writer per folder --------------------------------------------------------------------------------------
class LockHeld(Exception):
    """Another process holds the folder's lock; the message names it in one sentence."""


def _describe(folder: Path, holder: dict) -> str:
    who = f"process {holder.get('pid', '?')} on {holder.get('host', '?')}"
    since = f" since {holder['started']}" if holder.get("started") else ""
    what = f" ({holder['command']})" if holder.get("command") else ""
    return f"{folder} is being written by {who}{since}{what}; wait for it to finish or stop it, then try again."


def _read_holder(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 4096).decode() or "{}")
    except (OSError, ValueError):
        return {}


class FolderLock:
    """Exclusive lock on `folder` for one writer (see the module docstring). Use as a context manager, or call
    `acquire()` and `release()`; `acquire` raises LockHeld naming the holder."""

    def __init__(self, folder: str | os.PathLike, command: str | None = None):
        self.folder = Path(folder)
        self.command = command
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self.folder / LOCK_NAME

    def acquire(self) -> "FolderLock":
        if self._fd is not None or fcntl is None:
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise LockHeld(_describe(self.folder, holder)) from None
            except OSError:
                os.close(fd)
                raise
            try:  # the holder before us may have removed the file between our open and our flock: lock anew
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "command": (self.command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]))[:200]}
        try:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(info).encode())
        except OSError:
            pass  # a full disk: the lock holds all the same, only its description is missing
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and release the lock (a finished folder keeps no trace of it)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def lock_holder(folder: str | os.PathLike) -> dict | None:
    """Who holds `folder`'s lock ({"pid", "host", "started", "command"}), or None when no process does."""
    path = Path(folder) / LOCK_NAME
    if fcntl is None or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(fd) or {"pid": "?"}
    except OSError:
        return None
    finally:
        os.close(fd)  # also drops the shared lock taken when nobody held it
    return None


# ---- children end with their parent -----------------------------------------------------------------------------
_PR_SET_PDEATHSIG = 1


def _prctl():
    """libc's prctl, looked up in the parent (a forked child should call as little as possible before exec)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def child_process_options() -> dict:
    """Keyword arguments for subprocess.Popen / subprocess.run: on Linux the child gets SIGTERM when the process
    that started it dies (even by SIGKILL); elsewhere nothing (the parent stops its children when it can)."""
    prctl = _prctl()
    if prctl is None:
        return {}
    parent = os.getpid()

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:  # the parent died before the line above: end now
            os._exit(1)

    return {"preexec_fn": die_with_parent}


# ---- compiler output to a file ----------------------------------------------------------------------------------
@contextlib.contextmanager
def stderr_to(path: str | os.PathLike):
    """Send file descriptor 2 to `path` within the block (Triton's C++ passes print whole IR dumps there when
    they fail: the terminal gets one line, the file the whole dump)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "wb") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


# ---- SIGTERM as Ctrl-C ------------------------------------------------------------------------------------------
class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; handled like Ctrl-C (the run is recorded as interrupted, children are stopped)."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block SIGTERM raises Terminated in the main thread (outside the main thread: no change)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
