"""Run folders on disk: what their files hold, atomic writes, and when a run is finished.

A run is finished only when its folder reads back whole and agrees with itself:

- ``config.json`` and ``done.json`` parse to JSON objects, and ``done.json`` holds every
  summary key with a value of the right type (``final_omega``: a number, or a list of
  numbers when ω is a vector);
- ``done.json`` carries the digest of the ``config.json`` it was made from, and it matches;
- ``config.json`` names the env id, teacher and seed with values of the right types;
- ``evaluation.json`` parses, with a per inner step mean loss and accuracy (numbers, or
  null for NaN, as many of one as of the other);
- ``steps.jsonl`` holds one JSON object per line, one line per env step and the reset,
  every line with the same keys and numbers (or null) where the tables read numbers;
- ``student.pt`` is a non-empty file whose SHA-256 is the ``student_digest`` in
  ``done.json`` (runs made before the digest was stored: a non-empty file), or, for a
  run whose student was deliberately not kept (:func:`drop_student`: a benchmark moved
  between machines without its students), ``student.dropped.json`` holds that digest.

Anything else (an empty, truncated, garbage, non-UTF-8 or foreign file, a folder where a
file belongs, a file that cannot be read) is unfinished: the harness says so, naming
the folder, and redoes the run. A file that must be read and cannot be raises
:class:`DamagedRunError`, naming the file and what to do.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: The files of a run folder; everything else in it is left alone.
CONFIG, STEPS, STUDENT, EVALUATION, DONE = (
    "config.json",
    "steps.jsonl",
    "student.pt",
    "evaluation.json",
    "done.json",
)
RUN_FILES = (CONFIG, STEPS, STUDENT, EVALUATION, DONE)
#: Stands in a finished run's folder for a ``student.pt`` that was not kept: its digest.
STUDENT_DROPPED = "student.dropped.json"

#: ``done.json``'s keys and the types of their values (``None`` stands for a NaN loss; a
#: ``list`` is a non-empty list of finite numbers: ω of a family with several parameters).
SUMMARY_TYPES: dict[str, tuple[type, ...]] = {
    "final_loss": (float, int, type(None)),
    "final_accuracy": (float, int, type(None)),
    "initial_loss": (float, int, type(None)),
    "initial_accuracy": (float, int, type(None)),
    "final_target_loss": (float, int, type(None)),
    "final_omega": (float, int, list, type(None)),
    "env_steps": (int,),
    "meta_steps": (int,),
    "diverged": (bool,),
    "train_seconds": (float, int),
}


#: The per-step ``info`` keys logged to ``steps.jsonl``; a vector ω adds its named
#: coordinates (:func:`omega_fields`). ``train_flops`` and ``measure_flops`` are the
#: compute spent since the reset (FLOPs, :mod:`metacurriculum.student.compute`), ``wall_s``
#: (added by :func:`step_record`) the seconds since training started.
STEP_KEYS = (
    "meta_step",
    "omega",
    "n_way",
    "train_loss",
    "val_loss",
    "val_accuracy",
    "val_loss_normalized",
    "target_loss",
    "target_accuracy",
    "target_loss_normalized",
    "diverged",
    "train_flops",
    "measure_flops",
)
#: Step keys an env's info may lack (a student that reports no compute): logged as null.
OPTIONAL_STEP_KEYS = frozenset({"train_flops", "measure_flops"})


class BenchmarkError(Exception):
    """A benchmark that cannot start or finish: bad names or settings, mismatched runs."""


class DamagedRunError(BenchmarkError):
    """A file of a run folder that does not read back: empty, truncated or of another shape."""


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically: a temporary file, fsync, ``os.replace``."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, allow_nan=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def config_digest(config: dict[str, Any]) -> str:
    """A digest of a run's ``config.json`` content, stored in its ``done.json``."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _redo(path: Path) -> str:
    return (
        f"delete {path.parent} (or pass --overwrite) and rerun `metacurriculum bench` "
        "with the same options to redo the run"
    )


def read_text(path: Path) -> str:
    """``path``'s text, strictly UTF-8 (as ``json`` writes it).

    Raises:
        DamagedRunError: when it is missing, unreadable (a folder, no permission) or not
            UTF-8 text; the message names the file and what to do.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        raise DamagedRunError(f"{path} cannot be read ({reason}); {_redo(path)}.") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        byte = data[error.start : error.start + 1].hex()
        raise DamagedRunError(
            f"{path} is not UTF-8 text (byte 0x{byte} at position {error.start}): a damaged "
            f"file; {_redo(path)}."
        ) from None


def read_json(path: Path) -> dict[str, Any]:
    """``path`` parsed as a JSON object.

    Raises:
        DamagedRunError: when it is missing, unreadable, not UTF-8, not JSON or not an
            object; the message names the file and what to do.
    """
    text = read_text(path)
    try:
        value = json.loads(text)
    except ValueError as error:
        what = "is empty" if not text.strip() else f"is not valid JSON ({error})"
        raise DamagedRunError(f"{path} {what}; {_redo(path)}.") from None
    if not isinstance(value, dict):
        raise DamagedRunError(
            f"{path} holds a {type(value).__name__}, not a JSON object; {_redo(path)}."
        )
    return value


def read_steps(path: Path) -> list[dict[str, Any]]:
    """``steps.jsonl`` as a list of records, one per line.

    Raises:
        DamagedRunError: for a missing or empty file, or a line that is not a JSON object
            (a truncated file); the message names the file, the line and what to do.
    """
    lines = read_text(path).splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            raise DamagedRunError(
                f"{path}, line {number} is not a JSON object (a truncated or damaged file); "
                f"{_redo(path)}."
            )
        records.append(record)
    if not records:
        raise DamagedRunError(f"{path} is empty; {_redo(path)}.")
    return records


def _is_number(value: Any) -> bool:
    """A finite JSON number, not a boolean."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value)


def _valid(value: Any, types: tuple[type, ...]) -> bool:
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        return False
    if isinstance(value, list):  # a vector ω: every coordinate a number
        return bool(value) and all(_is_number(v) for v in value)
    return not isinstance(value, float) or math.isfinite(value)


def check_summary(summary: dict[str, Any], path: Path) -> None:
    """Raise :class:`DamagedRunError` unless ``summary`` has ``done.json``'s keys and types."""
    for key, types in SUMMARY_TYPES.items():
        value = summary.get(key, ...)
        if not _valid(value, types):
            got = "missing" if value is ... else repr(value)
            raise DamagedRunError(f"{path}: {key!r} is {got}, not a run summary; {_redo(path)}.")


#: ``config.json``'s keys that the tables and plots read, and the types of their values.
CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "env_id": (str,),
    "teacher": (str,),
    "seed": (int,),
    "env_settings": (dict,),
    "eval_tasks": (int,),
    "eval_seed": (int,),
}


def check_config(config: dict[str, Any], path: Path) -> None:
    """Raise :class:`DamagedRunError` unless ``config`` has the keys and types of a run's
    ``config.json`` that the tables and plots read."""
    for key, types in CONFIG_TYPES.items():
        value = config.get(key, ...)
        if isinstance(value, bool) or not isinstance(value, types):
            got = "missing" if value is ... else repr(value)
            raise DamagedRunError(f"{path}: {key!r} is {got}, not a run's config; {_redo(path)}.")


def check_evaluation(evaluation: dict[str, Any], path: Path) -> None:
    """Raise :class:`DamagedRunError` unless ``evaluation`` holds per inner step mean losses
    and accuracies: equally long, non-empty lists of numbers (null for NaN)."""
    lengths = set()
    for key in ("loss_mean", "accuracy_mean"):
        values = evaluation.get(key)
        if not isinstance(values, list) or not values:
            raise DamagedRunError(f"{path} lacks its {key!r} list; {_redo(path)}.")
        bad = [v for v in values if v is not None and not _is_number(v)]
        if bad:
            raise DamagedRunError(f"{path}: {key!r} holds {bad[0]!r}, not a number; {_redo(path)}.")
        lengths.add(len(values))
    if len(lengths) > 1:
        raise DamagedRunError(
            f"{path}: 'loss_mean' and 'accuracy_mean' differ in length; {_redo(path)}."
        )


def check_steps(steps: list[dict[str, Any]], path: Path) -> None:
    """Raise :class:`DamagedRunError` unless every line of ``steps.jsonl`` has the keys of
    the first and numbers (or null) where the tables and plots read numbers."""
    keys = set(steps[0])
    for number, record in enumerate(steps, 1):
        if set(record) != keys:
            raise DamagedRunError(
                f"{path}, line {number} has other keys than line 1; {_redo(path)}."
            )
    for key in keys - {"n_way", "action"}:
        try:
            np.array([np.nan if r[key] is None else r[key] for r in steps], dtype=float)
        except (TypeError, ValueError):
            raise DamagedRunError(
                f"{path}: the {key!r} values are not numbers of one shape; {_redo(path)}."
            ) from None


def file_digest(path: Path) -> str:
    """The SHA-256 of ``path``'s bytes (a run's ``student.pt``, in ``done.json``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_student(folder: Path, summary: dict[str, Any]) -> None:
    """Raise :class:`DamagedRunError` unless ``student.pt`` is a non-empty file whose digest
    is ``done.json``'s ``student_digest`` (when the run stored one), or is absent with a
    ``student.dropped.json`` naming that digest (:func:`drop_student`)."""
    path = folder / STUDENT
    if not path.exists() and (folder / STUDENT_DROPPED).exists():
        note = read_json(folder / STUDENT_DROPPED)
        digest = summary.get("student_digest")
        if digest is None or note.get("student_digest") != digest:
            raise DamagedRunError(
                f"{folder / STUDENT_DROPPED} names another student than {DONE} was written "
                f"for; {_redo(path)}."
            )
        return
    try:
        if not path.is_file() or path.stat().st_size == 0:
            what = "is missing" if not path.exists() else "is not a file, or empty"
            raise DamagedRunError(f"{path} {what}; {_redo(path)}.")
        digest = summary.get("student_digest")
        if digest is not None and digest != file_digest(path):
            raise DamagedRunError(
                f"{path} is not the student {DONE} was written for (truncated or replaced); "
                f"{_redo(path)}."
            )
    except OSError as error:
        reason = error.strerror or str(error)
        raise DamagedRunError(f"{path} cannot be read ({reason}); {_redo(path)}.") from None


def read_run(folder: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A finished run's ``config.json``, ``done.json`` and ``evaluation.json``, checked.

    Raises:
        DamagedRunError: when any of them, ``steps.jsonl`` or ``student.pt`` is damaged,
            or they disagree.
    """
    config, summary = read_json(folder / CONFIG), read_json(folder / DONE)
    check_summary(summary, folder / DONE)
    digest = summary.get("config_digest")
    if digest is not None and digest != config_digest(config):
        raise DamagedRunError(
            f"{folder / DONE} was made from another {CONFIG} than {folder / CONFIG}; "
            f"{_redo(folder / DONE)}."
        )
    check_config(config, folder / CONFIG)
    evaluation = read_json(folder / EVALUATION)
    check_evaluation(evaluation, folder / EVALUATION)
    steps = read_steps(folder / STEPS)
    if len(steps) != summary["env_steps"] + 1:
        raise DamagedRunError(
            f"{folder / STEPS} holds {len(steps)} lines, {DONE} says {summary['env_steps']} env "
            f"steps (+1 for the reset); {_redo(folder / STEPS)}."
        )
    check_steps(steps, folder / STEPS)
    check_student(folder, summary)
    return config, summary, evaluation


def unfinished_reason(folder: Path) -> str | None:
    """``None`` when ``folder`` holds a finished run, else why not (``"no done.json"``, or
    what is damaged or cannot be read)."""
    try:
        if not (folder / DONE).is_file():
            return f"no {DONE}"
    except OSError as error:  # a folder without permission to look inside
        return f"{folder} cannot be read ({error.strerror or error})"
    try:
        read_run(folder)
    except DamagedRunError as error:
        return str(error)
    return None


def clear_run(folder: Path) -> None:
    """Remove a run's own files (and leftover temporary files) from ``folder``.

    Raises:
        BenchmarkError: when a folder sits where one of the run's files belongs (it is
            not removed: it may hold something of yours); the message says what to do.
    """
    leftovers = [*folder.glob("*.tmp"), *folder.glob(f".{STUDENT}.*")]  # interrupted writes
    paths = [*(folder / name for name in (*RUN_FILES, STUDENT_DROPPED)), *leftovers]
    for path in paths:  # before anything is removed: the folder stays as it was
        if path.is_dir() and not path.is_symlink():
            raise BenchmarkError(
                f"{path} is a folder where the run's file belongs; remove it "
                f"(rm -r {path}) and rerun the same command to redo the run."
            )
    for path in paths:
        path.unlink(missing_ok=True)


def dropped_student_note(folder: Path, why: str) -> dict[str, Any]:
    """The ``student.dropped.json`` of a finished run whose ``student.pt`` is not kept: the
    digest ``done.json`` holds, the file's size and ``why``.

    Raises:
        DamagedRunError: when the run is not finished (or holds no student digest).
    """
    reason = unfinished_reason(folder)
    if reason is not None:
        raise DamagedRunError(f"{folder} is not a finished run ({reason}).")
    digest = read_json(folder / DONE).get("student_digest")
    if digest is None:
        raise DamagedRunError(
            f"{folder / DONE} holds no student digest (a run made before it was stored): "
            "its student.pt cannot be dropped and checked later."
        )
    path = folder / STUDENT
    size = path.stat().st_size if path.exists() else None
    return {"student_digest": digest, "bytes": size, "why": why}


def drop_student(folder: Path, why: str) -> int:
    """Set a finished run's ``student.pt`` aside: ``student.dropped.json`` (its digest, see
    :func:`dropped_student_note`) replaces it, and the run stays finished (its tables,
    plots and resume do not need the student). Returns the bytes freed.

    Raises:
        DamagedRunError: when the run is not finished.
    """
    note = dropped_student_note(folder, why)
    write_json(folder / STUDENT_DROPPED, note)
    (folder / STUDENT).unlink(missing_ok=True)
    return int(note["bytes"] or 0)


def check_writable(out: str | os.PathLike) -> None:
    """Make the output root ``out`` and check that files can be written there.

    Raises:
        BenchmarkError: naming the folder, the system's reason and the fix.
    """
    root = Path(out)
    probe = root / f".write-test.{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        reason = error.strerror or str(error)
        raise BenchmarkError(
            f"cannot write to the output folder {root} ({reason}); pass --out with a "
            "folder you can write to."
        ) from None


# -- what the files hold ------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays unwrapped, NaN and infinities as null."""
    if isinstance(value, dict):
        return {key: jsonable(v) for key, v in value.items()}
    if isinstance(value, (np.ndarray, list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


def omega_fields(info: Mapping[str, Any], key: str = "omega") -> dict[str, Any]:
    """ω of ``info`` under ``key``: a number for a one-parameter family; for a vector ω its
    list, then each coordinate by name (``"<key>/<name>"``, e.g. ``"omega/rotation"``),
    which the tables and plots read."""
    omega = info["omega"]
    if np.ndim(omega) == 0:
        return {key: omega}
    named = {f"{key}/{name}": info[f"omega/{name}"] for name in info["omega_names"]}
    return {key: omega, **named}


def step_record(
    step: int, info: Mapping[str, Any], action: Any, reward: float | None, wall_s: float
) -> dict[str, Any]:
    """One line of ``steps.jsonl``: the step's action, ``info`` measurements and reward
    (a vector ω also by name, see :func:`omega_fields`)."""
    record = {"step": step}
    for key in STEP_KEYS:
        if key == "omega":
            record.update(omega_fields(info))
        else:
            record[key] = info.get(key) if key in OPTIONAL_STEP_KEYS else info[key]
    action = None if action is None else np.asarray(action, dtype=float).reshape(-1)
    record["action"] = None if action is None else (action[0] if action.size == 1 else action)
    record.update(reward=reward, wall_s=round(wall_s, 4))
    return jsonable(record)


def evaluation_record(curves: Any, spec: Any) -> dict[str, Any]:
    """``evaluation.json``: per inner step means over tasks, and the per-task arrays."""
    loss, accuracy = np.asarray(curves.loss, float), np.asarray(curves.accuracy, float)
    return jsonable(
        {
            "eval_tasks": spec.eval_tasks,
            "eval_seed": spec.eval_seed,
            "inner_steps": list(range(loss.shape[1])),
            "loss_mean": loss.mean(axis=0),
            "accuracy_mean": accuracy.mean(axis=0),
            "loss": loss,
            "accuracy": accuracy,
            "n_way": np.asarray(curves.n_way),
        }
    )


def target_loss_auc(curve: Sequence[tuple[int, float]]) -> float:
    """Sample efficiency: the area under the target loss over meta-steps (trapezoids),
    divided by the meta-steps trained: the mean target loss over training, lower for a
    student that learns sooner.

    ``curve`` holds ``(meta_step, target_loss)`` from the reset on; NaN when a loss is
    not finite.
    """
    steps, losses = np.array(curve, float).T
    if not np.all(np.isfinite(losses)) or steps[-1] <= 0:
        return math.nan
    return float(np.trapezoid(losses, steps) / steps[-1])
