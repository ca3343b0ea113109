"""A benchmark's output folder packed into one archive and unpacked elsewhere: finished
runs travel without their students and stay finished; nothing else gets in."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from bench_helpers import run_numbers

from metacurriculum.benchmarks import BenchmarkError, run_benchmark, tables
from metacurriculum.benchmarks.archive import pack, unpack
from metacurriculum.benchmarks.plan import plan
from metacurriculum.benchmarks.run_folders import (
    STUDENT,
    STUDENT_DROPPED,
    clear_run,
    drop_student,
    unfinished_reason,
)


def test_packed_runs_travel_without_students_and_stay_finished(tiny_config, tmp_path):
    config = tiny_config(teachers=("none", "linear"))
    specs = run_benchmark(config)
    tables.report(config.out)
    unfinished = specs[0].folder(config.out)
    (unfinished / "done.json").unlink()  # interrupted: left out of the archive
    archive = pack(config.out, tmp_path / "runs.tar.gz")
    assert (unfinished / STUDENT).is_file()  # the folder itself is only read
    names = tarfile.open(archive).getnames()
    assert not any(name.endswith(STUDENT) for name in names)
    assert not any(name.startswith(specs[0].name) for name in names)
    assert {"results.md", "runs.csv"} <= set(names)
    copy = tmp_path / "copy"
    unpack(archive, copy)
    for spec in specs[1:]:
        folder = spec.folder(copy)
        assert unfinished_reason(folder) is None and not (folder / STUDENT).exists()
        assert run_numbers(folder) == run_numbers(spec.folder(config.out))
        note = json.loads((folder / STUDENT_DROPPED).read_text())
        done = json.loads((folder / "done.json").read_text())
        assert note["student_digest"] == done["student_digest"] and note["bytes"] > 0
    assert plan(specs, copy) == [specs[0]]  # only the unfinished one is redone
    with pytest.warns(UserWarning, match="unfinished"):
        tables.report(config.out)
    tables.report(copy)
    assert (copy / "runs.csv").read_bytes() == (tmp_path / "runs" / "runs.csv").read_bytes()


def test_a_dropped_student_with_another_digest_is_damage(tiny_config):
    config = tiny_config(teachers=("none",), seeds=(0,))
    (spec,) = run_benchmark(config)
    folder = spec.folder(config.out)
    assert drop_student(folder, "a test") > 0 and not (folder / STUDENT).exists()
    assert unfinished_reason(folder) is None
    note = json.loads((folder / STUDENT_DROPPED).read_text())
    (folder / STUDENT_DROPPED).write_text(json.dumps({**note, "student_digest": "0" * 64}))
    assert "names another student" in unfinished_reason(folder)
    clear_run(folder)  # a redo starts clean: the note goes with the run's files
    assert not (folder / STUDENT_DROPPED).exists()


def test_only_finished_runs_drop_their_students(tiny_config):
    config = tiny_config(teachers=("none",), seeds=(0,))
    (spec,) = run_benchmark(config)
    (spec.folder(config.out) / "done.json").unlink()
    with pytest.raises(BenchmarkError, match="not a finished run"):
        drop_student(spec.folder(config.out), "a test")


@pytest.mark.parametrize("name", ["../outside.txt", "/etc/evil", "link"])
def test_unpack_refuses_what_pack_never_writes(tmp_path, name):
    path = tmp_path / "bad.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo(name)
        if name == "link":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(info, io.BytesIO(b""))
    with pytest.raises(BenchmarkError, match="not a file or folder inside"):
        unpack(path, tmp_path / "into")
    assert not (tmp_path / "outside.txt").exists()


def test_unpack_names_an_archive_it_cannot_read(tmp_path):
    (tmp_path / "garbage.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(BenchmarkError, match="not a readable archive"):
        unpack(tmp_path / "garbage.tar.gz", tmp_path / "into")
