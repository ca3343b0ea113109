"""A benchmark's output folder as one archive, to move it between machines.

:func:`pack` writes the finished runs of an output folder (and its results, plots and
logs) into one ``.tar.gz``; :func:`unpack` restores them elsewhere, where they count as
finished: ``bench`` skips them, ``table`` and ``plot`` read them. What travels:

- every file of every finished run, except its ``student.pt`` unless ``students=True``:
  a student of MAML's 64-filter net with its Adam state is about 1.4 MB, 170 MB for the
  paper's 120 runs, more than a short-lived GPU machine can send back, and nothing in
  the tables or plots reads it. In its place the archive holds ``student.dropped.json``
  (:func:`~metacurriculum.benchmarks.run_folders.drop_student`), which keeps its digest,
  so the run stays finished and a rerun can still be checked against it;
- the other files under the folder (``results.md``, ``runs.csv``, ``plots/``, logs);
- not the unfinished runs (they would be redone from their seed anyway), nor the lock.

The folder itself is only read. Unpacking refuses links, absolute paths and paths that
climb out of the target folder.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

from metacurriculum.benchmarks.filesystem import LOCK
from metacurriculum.benchmarks.run_folders import (
    STUDENT,
    STUDENT_DROPPED,
    BenchmarkError,
    dropped_student_note,
    unfinished_reason,
)

logger = logging.getLogger("metacurriculum.benchmarks")

__all__ = ["pack", "run_folders", "unpack"]

#: Why a packed run has no ``student.pt`` (in its ``student.dropped.json``).
DROPPED_WHY = "left out of the archive the run travelled in (benchmarks/archive.py)"


def run_folders(root: Path) -> Iterator[Path]:
    """The run folders under ``root`` (``<env>/<teacher>/seed_<s>``), finished or not."""
    yield from sorted(p for p in root.glob("*/*/seed_*") if p.is_dir())


def pack(root: str | os.PathLike, path: str | os.PathLike, *, students: bool = False) -> Path:
    """Write the finished runs and other files of the output folder ``root`` to the
    archive ``path`` (``.tar.gz``; written to a temporary file, then renamed).

    Args:
        root: a ``bench --out`` folder.
        path: the archive (outside ``root``, or it would pack itself).
        students: keep each run's ``student.pt`` (default: ``student.dropped.json`` instead).

    Returns:
        ``path``.
    """
    root, path = Path(root), Path(path)
    runs = list(run_folders(root))
    finished = {folder for folder in runs if unfinished_reason(folder) is None}
    skipped = [folder for folder in runs if folder not in finished]
    if skipped:
        logger.info("not packed (unfinished): %s", ", ".join(str(f) for f in skipped))
    in_runs = set(runs)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(temporary, "w:gz") as archive:
        for file in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            run = file.parent if file.parent in in_runs else None
            name = file.relative_to(root).as_posix()
            if file.name == LOCK or file.resolve() == path.resolve() or file.suffix == ".tmp":
                continue
            if run is not None and run not in finished:
                continue
            if run is not None and file.name == STUDENT and not students:
                note = dropped_student_note(run, DROPPED_WHY)
                _add_bytes(archive, f"{Path(name).parent.as_posix()}/{STUDENT_DROPPED}", note)
                continue
            archive.add(file, arcname=name, recursive=False)
    os.replace(temporary, path)
    return path


def _add_bytes(archive: tarfile.TarFile, name: str, note: dict) -> None:
    data = (json.dumps(note, indent=1) + "\n").encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def unpack(path: str | os.PathLike, root: str | os.PathLike) -> list[Path]:
    """Restore an archive written by :func:`pack` into the folder ``root``.

    Returns:
        The run folders under ``root`` afterwards.

    Raises:
        BenchmarkError: for an archive that is not a ``.tar.gz``, or that holds links,
            absolute paths or paths that climb out of ``root``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(path, "r:gz") as archive:
            members = archive.getmembers()
            for member in members:
                target = (root / member.name).resolve()
                inside = target == root.resolve() or root.resolve() in target.parents
                if not (member.isfile() or member.isdir()) or not inside:
                    raise BenchmarkError(
                        f"{path} holds {member.name!r}, which is not a file or folder inside "
                        f"{root}; it was not written by metacurriculum's pack()."
                    )
            if hasattr(tarfile, "data_filter"):
                archive.extractall(root, members, filter="data")
            else:  # Python before 3.11.4: the members were checked above
                archive.extractall(root, members)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise BenchmarkError(f"{path} is not a readable archive ({error}).") from None
    return list(run_folders(root))
