"""The output folder on disk: one command at a time, one file mode, faults in one line.

- **A lock per output folder.** :func:`hold_output` takes an exclusive ``flock`` on
  ``<out>/.metacurriculum.lock`` for as long as a ``bench`` command plans, runs and
  reports; a second command on the same folder fails at once, naming the process that
  holds it. The kernel releases the lock when its holder exits, however it exits
  (``kill -9`` included), so a stale lock never blocks a rerun. Where ``fcntl`` is
  missing (Windows) nothing is locked.
- **One mode for every file.** A run's files get ``0o666`` less the umask, as
  ``open()`` gives them, whether written through a temporary file (``mkstemp`` makes
  them ``0o600``) or not: :func:`publish_mode`.
- **Faults as one line.** :func:`describe_os_error` turns an ``OSError`` (a read-only
  folder, a file where a folder belongs, a full disk) into one sentence naming the
  path and the fix; :func:`explain_write_failure` recognises a full disk behind
  another library's error (torch says ``unexpected pos``, not "no space left").
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path

from metacurriculum.benchmarks.run_folders import BenchmarkError, check_writable

__all__ = [
    "LOCK",
    "OutputBusyError",
    "describe_os_error",
    "explain_write_failure",
    "file_mode",
    "hold_output",
    "in_the_way",
    "publish_mode",
]

#: The lock file of an output folder (``load_runs`` globs ``*/*/seed_*``: it never sees it).
LOCK = ".metacurriculum.lock"


class OutputBusyError(BenchmarkError):
    """Another command holds the output folder's lock."""


#: Locks this process holds: resolved folder -> [open lock file, nesting depth].
_held: dict[Path, list] = {}


@contextlib.contextmanager
def hold_output(out: str | os.PathLike, command: str = "bench") -> Iterator[None]:
    """Hold the lock of the output folder ``out`` inside the block (re-entrant).

    Raises:
        BenchmarkError: when ``out`` cannot be made or written (naming the fix).
        OutputBusyError: when another process holds it; the message names that process
            (its pid, command and start time) and what to do.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no flock, no lock
        yield
        return
    root = Path(out).resolve()
    if root in _held:
        _held[root][1] += 1
        try:
            yield
        finally:
            _held[root][1] -= 1
        return
    check_writable(out)
    handle = open(root / LOCK, "a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise OutputBusyError(
            f"{holder} is writing to {out}; two commands on one output folder would "
            "overwrite each other's runs. Wait for it to finish (rerun the same command "
            "afterwards: finished runs are kept), or pass another --out."
        ) from None
    handle.seek(0)
    handle.truncate()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    handle.write(f"`metacurriculum {command}` (pid {os.getpid()}, started {started})\n")
    handle.flush()
    _held[root] = [handle, 1]
    try:
        yield
    finally:
        del _held[root]
        handle.close()  # releases the flock


def file_mode() -> int:
    """The mode ``open()`` gives a new file: ``0o666`` less this process's umask."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def publish_mode(path: str | os.PathLike) -> None:
    """Give ``path`` the mode of a file made by ``open()`` (:func:`file_mode`)."""
    os.chmod(path, file_mode())


def in_the_way(path: str | os.PathLike) -> Path | None:
    """The first existing non-folder on the way to ``path`` (a file where a folder
    belongs), or ``None``."""
    path = Path(path)
    for part in [*reversed(path.parents), path][1:]:
        if part.exists() and not part.is_dir():
            return part
    return None


def describe_os_error(error: OSError, doing: str = "write", elsewhere: str = "--out") -> str:
    """One line: what could not be done to which path, why, and the fix.

    Args:
        error: the system's error (``error.filename`` names the path when it has one).
        doing: the verb, e.g. ``"write"`` or ``"read"``.
        elsewhere: the option that writes somewhere else (``""``: the command has none).
    """
    path = error.filename if error.filename is not None else "a file"
    reason = error.strerror or str(error)
    code = error.errno
    other = f", or pass another {elsewhere}" if elsewhere else ""
    if isinstance(error, IsADirectoryError) or code == errno.EISDIR:
        fix = f"{path} is a folder where a file belongs: remove or rename it"
    elif code in (errno.ENOTDIR, errno.EEXIST):
        blocker = in_the_way(path) if code == errno.ENOTDIR else Path(path)
        fix = f"{blocker or path} is a file where a folder belongs: remove or rename it{other}"
    elif code in (errno.EACCES, errno.EPERM):
        fix = f"make {_folder(path)} writable (chmod u+w){other}"
    elif code == errno.EROFS:
        fix = f"{_folder(path)} is on a read-only file system: remount it writable{other}"
    elif code in (errno.ENOSPC, errno.EDQUOT):
        fix = "free space on its disk" + (
            f", or pass {elsewhere} on another disk" * bool(elsewhere)
        )
    else:
        fix = "check the path and its permissions"
    return f"cannot {doing} {path} ({reason}); {fix}."


def _folder(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path if path.is_dir() else path.parent


#: Bytes :func:`explain_write_failure` writes to tell a full disk from other failures.
PROBE_BYTES = 1 << 20


def explain_write_failure(path: str | os.PathLike, error: BaseException) -> BaseException:
    """The error to raise for a failed write of ``path`` by another library.

    torch reports a full disk as ``[enforce fail at inline_container.cc] unexpected
    pos``; this writes :data:`PROBE_BYTES` beside ``path`` with plain I/O, and when the
    disk is full returns an ``OSError(ENOSPC)`` naming ``path`` (its message says so and
    gives the fix); otherwise ``error`` itself.
    """
    if isinstance(error, OSError):
        return error
    probe = Path(path).with_name(f".{Path(path).name}.space-probe.{os.getpid()}")
    try:
        with open(probe, "wb") as f:
            f.write(b"\0" * PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError as probed:
        if probed.errno in (errno.ENOSPC, errno.EDQUOT):
            full = OSError(probed.errno, os.strerror(probed.errno), str(path))
            full.__cause__ = error
            return full
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return error
