"""What travels to the GPU machine and back (see :mod:`.gpu_session`): ``prepare`` and
``collect``, the two steps of a GPU session that run here.

``prepare`` puts what the device's bare machine lacks into ``.gpu-session/`` (ignored by
git, named in the device call's ``carry``): the wheels of gymnasium and its one missing
need (the versions installed here), and a copy of the data (``../shared/data`` does not
travel). ``collect`` takes a call's files (the device tool's ``files_at``): it copies them
into ``.gpu-session/previous/``, which the next call carries in and resumes from, and
unpacks their archive into the local output folder.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from metacurriculum.benchmarks.archive import unpack
from metacurriculum.benchmarks.run_folders import unfinished_reason

#: The archive of a call (written by the session), or its parts when it is larger than
#: :data:`PART_BYTES` (the device tool brings back files of at most 16 MiB).
ARCHIVE = "gpu-session.tar.gz"
PART_BYTES = 15 * 2**20


def split(archive: Path, parts: int = 4) -> list[Path]:
    """``archive`` as it should travel: itself when small enough, else its bytes in files
    ``<archive>.part0``, ``.part1``... of at most :data:`PART_BYTES` (it is removed)."""
    size = archive.stat().st_size
    for old in archive.parent.glob(f"{archive.name}.part*"):
        old.unlink()
    if size <= PART_BYTES:
        return [archive]
    if size > parts * PART_BYTES:
        raise SystemExit(f"{archive} is {size / 2**20:.0f} MiB, more than {parts} parts can hold.")
    paths = []
    with open(archive, "rb") as whole:
        for i, chunk in enumerate(iter(lambda: whole.read(PART_BYTES), b"")):
            paths.append(archive.with_name(f"{archive.name}.part{i}"))
            paths[-1].write_bytes(chunk)
    archive.unlink()
    return paths


def joined(folder: Path, scratch: Path) -> Path | None:
    """The archive in ``folder``: the file itself, or its parts joined into ``scratch``;
    ``None`` when there is none."""
    if (folder / ARCHIVE).is_file():
        return folder / ARCHIVE
    parts = sorted(folder.glob(f"{ARCHIVE}.part*"), key=lambda p: int(p.suffix[5:]))
    if not parts:
        return None
    scratch.mkdir(parents=True, exist_ok=True)
    whole = scratch / ARCHIVE
    with open(whole, "wb") as out:
        for part in parts:
            out.write(part.read_bytes())
    return whole


#: The packages the device's image lacks, as wheels (their own needs are in the image).
WHEELS = ("gymnasium", "farama-notifications")


def prepare(carry: Path, data: Path) -> None:
    """Put the wheels the device's image lacks and the data into ``carry`` (ignored by git,
    named in the device call's ``carry``)."""
    from importlib.metadata import version

    carry.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["git", "check-ignore", "-q", str(carry)]).returncode != 0:
        raise SystemExit(f"{carry} is not ignored by git: add /{carry}/ to .gitignore first.")
    wheels = carry / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    pins = [f"{name}=={version(name)}" for name in WHEELS]  # the versions tested here
    platforms = [f"--platform=manylinux_2_{n}_x86_64" for n in (17, 28)]
    download = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    target = ["--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(wheels)]
    subprocess.run([*download, "-q", *target, *pins], check=True)
    if not data.is_dir():
        raise SystemExit(f"no data at {data}: pass --data (the folder METACURRICULUM_DATA names).")
    shutil.rmtree(carry / "data", ignore_errors=True)
    for folder in [data, *(p for p in sorted(data.rglob("*")) if p.is_dir())]:
        (carry / "data" / folder.relative_to(data)).mkdir(parents=True, exist_ok=True)
    for file in (p for p in data.rglob("*") if p.is_file()):  # the files, not their modes
        shutil.copyfile(file, carry / "data" / file.relative_to(data))
    size = sum(p.stat().st_size for p in carry.rglob("*") if p.is_file()) / 2**20
    print(f"{carry}: {', '.join(pins)} and the data of {data}: {size:.1f} MiB in all")
    print(
        "Device call: command `bash benchmarks/experiments/gpu_session.sh`, "
        f'carry ["{carry}"], timeout_s 600; then `python -m '
        "metacurriculum.benchmarks.experiments.gpu_session collect FILES_AT`."
    )


def collect(files: Path, carry: Path, into: Path) -> None:
    """A call's files (the device's ``files_at``) into ``carry/previous`` (the next call
    carries them) and its archive unpacked into ``into``, the local output folder."""
    previous = carry / "previous"
    if joined(files, carry / "scratch") is None:
        raise SystemExit(f"{files} holds no {ARCHIVE}: give the folder of a call's files.")
    shutil.rmtree(previous, ignore_errors=True)
    previous.mkdir(parents=True)
    for path in files.iterdir():
        if path.is_file():
            shutil.copyfile(path, previous / path.name)
    staging = into.with_name(f".{into.name}.unpacking")
    shutil.rmtree(staging, ignore_errors=True)
    runs = unpack(joined(previous, carry / "scratch"), staging)  # type: ignore[arg-type]
    shutil.rmtree(carry / "scratch", ignore_errors=True)
    shutil.rmtree(into, ignore_errors=True)
    staging.rename(into)
    finished = sum(unfinished_reason(into / r.relative_to(staging)) is None for r in runs)
    print(
        f"{into}: {finished} finished runs; results in {into / 'results.md'}; next call "
        f"carries {previous}"
    )
