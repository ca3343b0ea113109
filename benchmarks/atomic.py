"""Atomic file writes for the results files and plots: a crash or a full disk leaves the
previous file whole (or none), never a truncated one."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and
    ``os.replace``.

    The temporary file is created with mode ``0o666`` less the umask, as ``open`` would
    create ``path``; it is flushed and fsynced before the rename, and removed when the
    write fails (``ENOSPC``, an interrupt), whose exception propagates. An ``OSError``
    names ``path``, not the temporary file: the file the user knows and can fix.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:
        raise _naming(error, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise _naming(error, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _naming(error: OSError, path: Path) -> OSError:
    """``error`` (same type and errno) about ``path`` instead of the temporary file."""
    if error.errno is None:
        return error
    return type(error)(error.errno, error.strerror, str(path))
