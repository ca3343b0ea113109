"""Syllabus's curricula as teachers: they drive the env (``action_type="omega"``), repeat for a
seed without touching NumPy's global generator, and learn what their curriculum learns."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from fakes import FakeEnv, drive

import metacurriculum  # noqa: F401 - registers the envs
from metacurriculum.teachers import make_teacher
from metacurriculum.teachers.syllabus import Measurements

pytest.importorskip("syllabus")

ANALYTIC = "MetaCurriculum-Analytic-v0"


@pytest.mark.parametrize("name", ["syllabus-lp", "syllabus-dr"])
def test_a_curriculum_drives_the_env_by_omega_and_repeats_for_a_seed(name):
    env = gym.make(ANALYTIC, action_type="omega", n_max=5, budget=200)
    grid = [2.0, 3.0, 4.0, 5.0]  # one task per number of classes
    runs = []
    for _ in range(2):
        np.random.seed(123)  # noqa: NPY002 - Syllabus draws from the global generator
        run = drive(make_teacher(name), env, steps=50, seed=7)
        untouched = np.random.RandomState(123).random_sample()
        assert np.random.random() == untouched  # noqa: NPY002
        omegas = run["omegas"].tolist()
        assert set(omegas) <= set(grid)
        assert [float(np.asarray(a).item()) for a in run["actions"]] == omegas
        runs.append(omegas)
    assert runs[0] == runs[1]
    other = drive(make_teacher(name), env, steps=50, seed=8)["omegas"].tolist()
    assert other != runs[0]


def improves_at_three(omega, t, visits):
    """Competence rises with practice at ω = 3 only; elsewhere the student stays at chance."""
    return 1.0 - 0.9 * (1 - 0.9 ** visits[3]) if round(omega) == 3 else 1.0


def test_learning_progress_goes_where_the_student_learns_and_randomisation_does_not():
    env = FakeEnv(improves_at_three, n_max=5, action_type="continuous")
    shares = {}
    for name in ("syllabus-lp", "syllabus-dr"):
        draws = []
        for seed in range(4):
            teacher = make_teacher(name, bins=5)
            draws += drive(teacher, env, steps=60, seed=seed)["omegas"].tolist()
        shares[name] = np.mean(np.round(draws) == 3)
    assert shares["syllabus-dr"] == pytest.approx(0.2, abs=0.07)  # 1 task of 5, uniformly
    assert shares["syllabus-lp"] > shares["syllabus-dr"] + 0.15, shares


def test_vector_omega_is_a_grid_and_the_summary_counts_it():
    env = gym.make("MetaCurriculum-AnalyticMulti-v0", action_type="omega", budget=200)
    teacher = make_teacher("syllabus-dr", bins=3)
    run = drive(teacher, env, steps=40, seed=0)
    omegas = np.array(run["actions"])  # the action is ω itself
    assert omegas.shape == (40, 3)
    for low, high, column in zip([2, 0, 0], [20, 60, 0.5], omegas.T, strict=True):
        assert set(np.round(column, 9)) <= {low, (low + high) / 2, high}
    summary = teacher.summary()
    assert 0 < summary["teacher/tasks_tried"] <= 1 and 0 <= summary["teacher/hardest_fraction"] < 1


def test_the_evaluator_answers_for_a_task_not_measured_with_its_nearest_measured():
    measurements = Measurements(np.linspace(0, 1, 5)[:, None])
    assert measurements.rates().tolist() == [0.0] * 5
    measurements.record(1, 0.4)
    measurements.record(4, 0.9)
    assert measurements.rates().tolist() == [0.4, 0.4, 0.4, 0.9, 0.9]
    _, rates, final, _ = measurements.evaluate_agent(1)
    assert rates.tolist() == final.tolist() == [0.4, 0.4, 0.4, 0.9, 0.9]


def test_a_curriculum_of_your_own():
    from syllabus.curricula import Constant

    teacher = make_teacher("syllabus", curriculum=lambda space, _: Constant(2, space), bins=4)
    env = gym.make(ANALYTIC, action_type="omega", n_max=5, budget=40)
    assert set(drive(teacher, env, steps=10)["omegas"].tolist()) == {4.0}  # the third of 2, 3, 4, 5


def test_importing_syllabus_leaves_numpy_errors_as_they_were():
    """Syllabus's PLR module runs np.seterr(all="raise") when imported."""
    code = (
        "import numpy as np; before = np.geterr()\n"
        "from metacurriculum.teachers import make_teacher\n"
        "make_teacher('syllabus-lp')\n"
        "import syllabus.curricula.plr.task_sampler\n"
        "assert np.geterr() == before, np.geterr()\n"
        "np.exp(-1000.0)  # an underflow: no error\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)


def test_bad_settings_and_a_missing_syllabus_are_clear(monkeypatch):
    with pytest.raises(ValueError, match="curriculum='plr' is unknown"):
        make_teacher("syllabus", curriculum="plr")
    with pytest.raises(ValueError, match="bins=1 must be an integer >= 2"):
        make_teacher("syllabus-lp", bins=1)
    monkeypatch.setitem(sys.modules, "syllabus", None)
    with pytest.raises(ImportError, match=r"pip install metacurriculum\[syllabus\]"):
        make_teacher("syllabus-dr")


def test_the_harness_runs_syllabus_teachers(tmp_path):
    from metacurriculum.benchmarks import BenchConfig, run_benchmark

    config = BenchConfig(
        envs=(f"{ANALYTIC}@action_type=omega",),
        teachers=("syllabus-lp", "syllabus-dr@bins=3", "none"),
        seeds=(0,),
        env_kwargs={"budget": 40, "n_max": 5},
        eval_tasks=4,
        out=str(tmp_path),
        workers=1,
        plots=False,
    )
    run_benchmark(config)
    assert len(list(tmp_path.glob("*/*/seed_0/done.json"))) == 3
