"""A population of students equals R separate students fed the same batches, for every learner.

The contract (float64, to 1e-10): parameters, metrics and evaluations, at
second and first order, on batches that mix tasks of different n, on every
population path, including students reset mid-run (their Adam restarts while
the others' goes on) and chunked grouped calls.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metacurriculum.student import MetaLearner, Population
from metacurriculum.student.population import concat_batches, meta_step_bytes

pytestmark = pytest.mark.usefixtures("single_thread")

SEEDS = (3, 5, 11)
#: n of each task, per student, per meta-step: mixed within and across students.
N_WAY = (((2, 5, 3), (4, 1), (6, 6, 2)), ((3, 3), (5, 2, 4), (1, 6)), ((2, 2, 2), (6,), (4, 3)))
PATHS = {"loop": {}, "vmap": {}, "grouped": {}, "grouped_chunks_of_2": {"chunk_size": 2}}


def batches(make_batch, step: int, students=(0, 1, 2)):
    return [make_batch(N_WAY[step][r], k_shot=2, q_query=2, seed=100 * step + r) for r in students]


def assert_same_student(population: Population, row: int, student: MetaLearner) -> None:
    assert population.meta_steps[row] == student.meta_steps
    for name, p in student.params.items():
        # atol: where a gradient is zero but for rounding (ProtoNet's distances ignore some
        # directions), Adam divides ~1e-17 by its eps of 1e-8: steps of ~1e-10.
        torch.testing.assert_close(population.params[name][row], p.detach(), rtol=1e-10, atol=1e-8)


def assert_same_metrics(got: dict[str, float], expected: dict[str, float]) -> None:
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        # rel 1e-8: Adam's rounding-noise steps (see assert_same_student) shift later metrics.
        assert got[key] == pytest.approx(value, rel=1e-8, abs=1e-12), key


#: learner -> its settings in the population tests (MAML at both orders).
LEARNERS = {
    "maml-second": ("maml", {"first_order": False}),
    "maml-first": ("maml", {"first_order": True}),
    "fomaml": ("fomaml", {}),
    "anil": ("anil", {}),
    "metasgd": ("metasgd", {}),
    "reptile": ("reptile", {}),
    "protonet": ("protonet", {}),
}


@pytest.mark.parametrize("learner", LEARNERS)
@pytest.mark.parametrize("path", PATHS)
def test_population_equals_separate_students(path, learner, make_batch, make_config) -> None:
    batching = path.split("_")[0]
    name, settings = LEARNERS[learner]
    config = make_config(name, meta_lr=0.05, **settings)
    population = Population(
        make_config(name, meta_lr=0.05, batching=batching, **settings), SEEDS, **PATHS[path]
    )
    students = [
        MetaLearner(config, seed=seed) for seed in SEEDS
    ]  # the loop path: the reference's twin
    for row, student in enumerate(students):
        assert_same_student(population, row, student)
    grads, _ = population.meta_gradient(batches(make_batch, 0))
    for row, (student, batch) in enumerate(zip(students, batches(make_batch, 0), strict=True)):
        for name, g in student.meta_gradient(batch).items():
            torch.testing.assert_close(grads[name][row], g, rtol=1e-10, atol=1e-12)
    for step in range(3):
        step_batches = batches(make_batch, step)
        metrics = population.meta_step(step_batches)
        for row, (student, batch) in enumerate(zip(students, step_batches, strict=True)):
            assert_same_metrics(metrics[row], student.meta_step(batch))
            assert_same_student(population, row, student)
    evaluation_batches = batches(make_batch, 0)[::-1]
    evaluations = population.evaluate(evaluation_batches, inner_steps=2, chunk_size=3)
    for evaluation, student, batch in zip(evaluations, students, evaluation_batches, strict=True):
        expected = student.evaluate(batch, inner_steps=2)
        # rtol 1e-8: Adam's rounding-noise steps (see assert_same_student).
        np.testing.assert_allclose(evaluation.task_query_loss, expected.task_query_loss, rtol=1e-8)
        np.testing.assert_array_equal(evaluation.task_query_acc, expected.task_query_acc)
        np.testing.assert_array_equal(evaluation.n_way, expected.n_way)
        np.testing.assert_allclose(evaluation.query_loss, expected.query_loss, rtol=1e-8)


@pytest.mark.parametrize("batching", ["loop", "grouped"])
def test_subsets_and_resets_keep_each_student_its_own_adam(
    batching, make_batch, make_config
) -> None:
    config = make_config(meta_lr=0.05)
    population = Population(make_config(meta_lr=0.05, batching=batching), SEEDS)
    students = [MetaLearner(config, seed=seed) for seed in SEEDS]
    first = batches(make_batch, 0)
    population.meta_step(first)
    for student, batch in zip(students, first, strict=True):
        student.meta_step(batch)
    # Student 1 starts over; then students 2 and 1 step (Adam at steps 2 and 1 together).
    population.reset_row(1, 42)
    students[1] = MetaLearner(config, seed=42)
    assert population.meta_steps == [1, 0, 1]
    assert_same_student(population, 1, students[1])
    second = batches(make_batch, 1, students=(2, 1))
    metrics = population.meta_step(second, rows=[2, 1])
    assert_same_metrics(metrics[0], students[2].meta_step(second[0]))
    assert_same_metrics(metrics[1], students[1].meta_step(second[1]))
    third = batches(make_batch, 2)
    population.meta_step(third)
    for row, (student, batch) in enumerate(zip(students, third, strict=True)):
        student.meta_step(batch)
        assert_same_student(population, row, student)
    assert population.meta_steps == [2, 2, 3]


def test_a_student_leaves_and_joins_as_an_ordinary_maml_checkpoint(make_batch, make_config) -> None:
    config = make_config(meta_lr=0.05)
    population = Population(config, SEEDS)
    population.meta_step(batches(make_batch, 0))
    student = MetaLearner(config)
    student.load_state_dict(population.row_state_dict(2))
    assert student.meta_steps == 1
    batch = make_batch((3, 4), k_shot=2, seed=9)
    expected = population.meta_step([batch], rows=[2])[0]
    assert_same_metrics(student.meta_step(batch), expected)
    assert_same_student(population, 2, student)

    outsider = MetaLearner(config, seed=77)
    outsider.meta_step(batch)
    population.load_row(0, outsider.state_dict())
    later = make_batch((2, 6), k_shot=2, seed=10)
    assert_same_metrics(population.meta_step([later], rows=[0])[0], outsider.meta_step(later))
    assert_same_student(population, 0, outsider)


def test_wrong_students_batches_and_settings_raise(make_batch, make_config) -> None:
    population = Population(make_config(), SEEDS)
    two = batches(make_batch, 0)[:2]
    with pytest.raises(ValueError, match="got 2 batch\\(es\\) for 3 student\\(s\\)"):
        population.meta_step(two)
    with pytest.raises(ValueError, match=r"rows=\[0, 0\] must be distinct students in 0\.\.2"):
        population.meta_step(two, rows=[0, 0])
    with pytest.raises(ValueError, match="rows=\\[5\\]"):
        population.evaluate(two[:1], rows=[5])
    with pytest.raises(ValueError, match="at least one seed"):
        Population(make_config(), [])
    with pytest.raises(ValueError, match="chunk_size=0"):
        Population(make_config(), SEEDS, chunk_size=0)
    with pytest.raises(ValueError, match="hidden=4 into one with hidden=5"):
        population.load_row(0, MetaLearner(make_config(hidden=4)).state_dict())
    with pytest.raises(ValueError, match=r"lr=0\.5"):
        population.load_row(0, MetaLearner(make_config(meta_lr=0.5)).state_dict())


def test_grouped_chunks_fit_the_free_memory(monkeypatch, make_batch, make_config) -> None:
    from metacurriculum.student import population as module

    population = Population(make_config(batching="grouped"), SEEDS)
    step = batches(make_batch, 0)
    assert population._row_chunk(step) == 1  # the CPU: one row at a time, as alone
    population.merge_rows = True  # rows fit to free memory, as on a GPU
    per_student = max(
        meta_step_bytes(population.config, population.learner, b) * b.num_tasks for b in step
    )
    monkeypatch.setattr(module, "free_memory_bytes", lambda device: int(2.5 * per_student / 0.5))
    assert population._row_chunk(step) == 2
    monkeypatch.setattr(module, "free_memory_bytes", lambda device: 1)
    assert population._row_chunk(step) == 1
    monkeypatch.setattr(module, "free_memory_bytes", lambda device: None)
    assert population._row_chunk(step) == 3
    assert Population(make_config(), SEEDS, chunk_size=2)._row_chunk(step) == 2


def test_meta_step_bytes_grows_with_the_work(make_batch, make_config) -> None:
    batch = make_batch((2, 5))

    def estimate(**fields) -> int:
        population = Population(make_config(**fields), [0])
        return meta_step_bytes(population.config, population.learner, batch)

    second = estimate()
    assert estimate(first_order=True) < second
    assert estimate(inner_steps=6) > second
    assert estimate(dtype="float32") * 2 == second
    assert estimate(learner="anil") < estimate(first_order=True)
    assert estimate(learner="protonet") < estimate(learner="reptile")


def test_concat_batches_pads_each_to_the_largest(make_batch) -> None:
    small, large = make_batch((2,), k_shot=1, q_query=2), make_batch((5, 3), k_shot=1, q_query=2)
    merged = concat_batches([small, large])
    assert merged.num_tasks == 3 and merged.n_way.tolist() == [2, 5, 3]
    assert merged.support_x.shape[1] == 5 and merged.query_x.shape[1] == 10
    for i, (batch, j) in enumerate(((small, 0), (large, 0), (large, 1))):
        for got, expected in zip(merged.task(i), batch.task(j), strict=True):
            assert torch.equal(torch.as_tensor(got), torch.as_tensor(expected))


def test_a_cuda_out_of_memory_halves_the_chunks(monkeypatch, make_batch, make_config) -> None:
    population = Population(make_config(batching="grouped"), SEEDS)
    population.merge_rows = True  # rows fit to free memory, as on a GPU
    reference = Population(make_config(batching="grouped"), SEEDS, chunk_size=1)
    real = Population._grouped_chunk
    calls = []

    def chunk_that_fits_one(self, batches, rows):
        calls.append(len(rows))
        if len(rows) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, batches, rows)

    monkeypatch.setattr(Population, "_grouped_chunk", chunk_that_fits_one)
    step = batches(make_batch, 0)
    assert population.meta_step(step) == reference.meta_step(step)
    assert calls[:3] == [3, 1, 1] and population._chunk_cap == 1
    fixed = Population(make_config(batching="grouped"), SEEDS, chunk_size=2)
    with pytest.raises(torch.OutOfMemoryError):
        fixed.meta_step(step)


def test_population_speed_benchmark_runs_on_a_tiny_shape() -> None:
    """Smoke test of ``python -m metacurriculum.benchmarks.experiments.population_speed``'s pieces."""
    from metacurriculum.benchmarks.experiments import population_speed as bench

    shape = bench.Shape(n_way=3, q_query=2, meta_batch=2, inner_steps=1, hidden=4, depth=2)
    runs = {path: bench.build(shape, "second", "cpu", 3, path) for path in ("single", *bench.PATHS)}
    assert runs["grouped"].population.size == 3
    timings = bench.seconds_per_step(runs, "cpu", warmup=0, repeats=1)
    assert set(timings) == {"single", "loop", "grouped"} and all(t > 0 for t in timings.values())
    assert runs["loop"].population.meta_steps == [1, 1, 1]
    assert bench.peak_memory_mib(shape, "first", "cpu", 2, "grouped") >= 0
    result = bench.Result("second", 3, "loop", 2.0, 1.5, 1.5, 1.0, 10.0)
    assert "1.50x" in bench.table([result])
