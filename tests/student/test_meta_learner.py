"""A student's behaviour: learning, evaluation curves, checkpoints, seeding, errors."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from metacurriculum.student import MetaLearner, StudentConfig

pytestmark = pytest.mark.usefixtures("single_thread")

BATCHINGS = ["loop", "vmap", "grouped"]


@pytest.mark.parametrize("batching", BATCHINGS)
def test_evaluate_returns_a_point_per_inner_step_and_adaptation_helps(
    batching: str, make_batch, make_config
) -> None:
    student = MetaLearner(make_config(inner_lr=0.5, batching=batching), seed=0)
    batch = make_batch((3, 5, 4), k_shot=2, q_query=4, noise=0.2)
    result = student.evaluate(batch, inner_steps=4, chunk_size=2)
    assert result.query_loss.shape == (5,)
    assert result.query_acc.shape == (5,)
    assert result.task_query_loss.shape == (3, 5)
    assert result.task_query_acc.shape == (3, 5)
    np.testing.assert_array_equal(result.n_way, [3, 5, 4])
    np.testing.assert_allclose(result.query_loss, result.task_query_loss.mean(axis=0))
    assert result.query_loss[-1] < 0.7 * result.query_loss[0]
    assert result.query_acc[-1] > result.query_acc[0]


def test_evaluate_paths_and_chunking_agree(make_batch, make_config) -> None:
    student = MetaLearner(make_config(), seed=1)
    batch = make_batch((1, 4, 2, 6, 3), k_shot=2, seed=1)
    loop = student.evaluate(batch, batching="loop")
    others = [
        student.evaluate(batch, batching=batching, chunk_size=chunk_size)
        for batching in ("vmap", "grouped")
        for chunk_size in (64, 2)
    ]
    assert loop.query_loss.shape == (student.config.settings.inner_steps + 1,)
    for other in others:
        np.testing.assert_allclose(other.task_query_loss, loop.task_query_loss, rtol=1e-10)
        np.testing.assert_array_equal(other.task_query_acc, loop.task_query_acc)


def test_evaluate_leaves_the_student_unchanged(make_batch, make_config) -> None:
    student = MetaLearner(make_config(), seed=0)
    before = {name: p.detach().clone() for name, p in student.params.items()}
    student.evaluate(make_batch((2, 3)), inner_steps=2)
    for name, p in student.params.items():
        assert torch.equal(p, before[name])
        assert p.grad is None
    assert student.meta_steps == 0


@pytest.mark.parametrize("first_order", [False, True], ids=["second_order", "first_order"])
@pytest.mark.parametrize("batching", BATCHINGS)
def test_meta_steps_on_a_fixed_batch_lower_the_query_loss(
    batching: str, first_order: bool, make_batch, make_config
) -> None:
    config = make_config(
        batching=batching, first_order=first_order, meta_lr=0.01, inner_lr=0.1, inner_steps=1
    )
    student = MetaLearner(config, seed=0)
    batch = make_batch((3, 5, 2), k_shot=2, q_query=3, noise=0.3)
    losses = [student.meta_step(batch)["student/query_loss"] for _ in range(12)]
    assert max(losses[-3:]) < 0.7 * losses[0]
    assert student.meta_steps == 12


def test_meta_step_reports_namespaced_finite_metrics(make_batch, make_config) -> None:
    student = MetaLearner(make_config(dtype="float32"), seed=0)
    metrics = student.meta_step(make_batch((2, 4), dtype=torch.float32))
    assert set(metrics) == {
        "student/query_loss",
        "student/query_acc",
        "student/support_loss",
        "student/grad_norm",
    }
    assert all(isinstance(v, float) and np.isfinite(v) for v in metrics.values())
    assert 0.0 <= metrics["student/query_acc"] <= 1.0
    assert metrics["student/grad_norm"] > 0


def test_meta_step_paths_agree(make_batch, make_config) -> None:
    batch = make_batch((2, 5, 3), k_shot=2)
    metrics = {}
    for batching in BATCHINGS:
        student = MetaLearner(make_config(batching=batching), seed=4)
        metrics[batching] = [student.meta_step(batch) for _ in range(2)]
    for batching in ("vmap", "grouped"):
        for loop, other in zip(metrics["loop"], metrics[batching], strict=True):
            assert loop.keys() == other.keys()
            for key in loop:
                assert loop[key] == pytest.approx(other[key], rel=1e-9, abs=1e-12)


def test_save_and_load_resume_identically(tmp_path, make_batch, make_config) -> None:
    batch = make_batch((3, 2), k_shot=2)
    student = MetaLearner(make_config(dtype="float32"), seed=0)
    student.meta_step(batch)
    path = tmp_path / "ckpt" / "student.pt"
    student.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["student.pt"]  # no temp file left
    expected = [student.meta_step(batch) for _ in range(2)]

    restored = MetaLearner.load(path)
    assert restored.config == student.config
    assert restored.meta_steps == 1
    assert [restored.meta_step(batch) for _ in range(2)] == expected
    for name, p in restored.params.items():
        assert torch.equal(p, student.params[name])


def test_load_state_dict_rejects_another_network_shape(make_config) -> None:
    state = MetaLearner(make_config(hidden=5), seed=0).state_dict()
    with pytest.raises(ValueError, match="hidden=5 into one with hidden=4"):
        MetaLearner(make_config(hidden=4), seed=0).load_state_dict(state)


def test_same_seed_same_numbers_and_global_rng_untouched(make_batch, make_config) -> None:
    batch = make_batch((2, 4), k_shot=2)
    config = make_config(dtype="float32")
    torch.manual_seed(123)
    rng_state = torch.get_rng_state()
    runs = []
    for seed in (7, 7, 8):
        student = MetaLearner(config, seed=seed)
        runs.append([student.meta_step(batch) for _ in range(2)])
        runs[-1].append(student.evaluate(batch).task_query_loss.tolist())
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize("init", ["torch", "xavier", "kaiming"])
def test_each_init_draws_its_rule_from_the_private_generator(make_config, init: str) -> None:
    config = make_config(init=init, hidden=16, depth=2, image_size=16)
    torch.manual_seed(0)
    rng_state = torch.get_rng_state()
    params = {k: v.detach() for k, v in MetaLearner(config, seed=3).params.items()}
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert all(torch.equal(params[k], MetaLearner(config, seed=3).params[k]) for k in params)
    conv = params["block1.conv.weight"]  # fan_in = 16 * 9 = fan_out
    head = params["head.weight"]  # fan_in = 16 * 4 * 4, fan_out = n_max
    fan_in, head_fan_in = 16 * 9, head.shape[1]
    if init == "torch":  # U(-1/sqrt(fan_in), 1/sqrt(fan_in)): std = 1 / sqrt(3 fan_in)
        expected_std = 1 / math.sqrt(3 * fan_in)
        assert conv.abs().max() <= 1 / math.sqrt(fan_in)
        assert params["head.bias"].abs().max() <= 1 / math.sqrt(head_fan_in)
        assert params["head.bias"].abs().min() > 0
    elif init == "xavier":  # U(-b, b), b = sqrt(6 / (fan_in + fan_out))
        expected_std = math.sqrt(6 / (2 * fan_in)) / math.sqrt(3)
        assert conv.abs().max() <= math.sqrt(6 / (2 * fan_in))
        assert head.abs().max() <= math.sqrt(6 / (head_fan_in + config.n_max))
    else:  # N(0, 2 / fan_in)
        expected_std = math.sqrt(2 / fan_in)
    assert float(conv.std()) == pytest.approx(expected_std, rel=0.1)
    assert torch.equal(params["block0.bn.weight"], torch.ones(16, dtype=torch.float64))


def test_a_generator_seeds_like_its_int(make_config) -> None:
    config = make_config()
    by_int = MetaLearner(config, seed=5).params
    by_generator = MetaLearner(config, seed=torch.Generator().manual_seed(5)).params
    assert all(torch.equal(by_int[name], by_generator[name]) for name in by_int)


BAD_CONFIGS = {
    "unknown_device": ({"device": "tpu"}, "device='tpu' is not supported"),
    "bad_batching": ({"batching": "parallel"}, "batching='parallel' is unknown; use one of"),
    "bad_dtype": ({"dtype": "float16"}, "dtype='float16' is unknown"),
    "zero_logits": ({"n_max": 0}, "n_max must be >= 1, got 0"),
    "too_deep": ({"depth": 5}, "depth=5 is too deep for image_size=28.*depth <= 4"),
    "negative_inner_lr": (
        {"learner_kwargs": {"inner_lr": -0.1}},
        "inner_lr=-0.1 must be a finite number > 0",
    ),
    "negative_inner_steps": (
        {"learner_kwargs": {"inner_steps": -1}},
        "inner_steps=-1 must be an integer >= 0",
    ),
    "unknown_learner": ({"learner": "mamll"}, "learner='mamll' is unknown. Did you mean 'maml'"),
    "setting_of_another_learner": (
        {"learner": "protonet", "learner_kwargs": {"inner_lr": 0.1}},
        "learner 'protonet' has no setting 'inner_lr'",
    ),
    "float_hidden": ({"hidden": 6.5}, "hidden must be an int"),
    "unknown_init": ({"init": "orthogonal"}, r"init='orthogonal' is unknown; use one of \('torch'"),
}


@pytest.mark.parametrize(("fields", "message"), BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_bad_configs_raise_with_the_fix(fields: dict, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        StudentConfig(**{"n_max": 5, **fields})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_raises() -> None:
    with pytest.raises(ValueError, match=r"CUDA is not available.*device='cpu'"):
        StudentConfig(n_max=5, device="cuda")


def test_auto_resolves_to_the_fast_path_for_the_device() -> None:
    config = StudentConfig(n_max=5)
    expected = "grouped" if torch.cuda.is_available() else "loop"
    assert config.resolved_batching == expected
    assert dataclasses.replace(config, device="cpu").resolved_batching == "loop"


def test_batches_that_do_not_fit_the_network_raise(make_batch, make_config) -> None:
    student = MetaLearner(make_config(n_max=3), seed=0)
    with pytest.raises(ValueError, match=r"n_way ranges over 2..4 but the student has n_max=3"):
        student.meta_step(make_batch((2, 4)))
    with pytest.raises(ValueError, match=r"shape \(1, 10, 10\) but the student expects"):
        student.evaluate(make_batch((2,), image_size=10))


def test_speed_benchmark_runs_on_a_tiny_shape() -> None:
    """Smoke test of ``python -m metacurriculum.benchmarks.experiments.student_speed``'s pieces."""
    from metacurriculum.benchmarks.experiments import student_speed as bench

    shape = bench.Shape(n_way=3, q_query=2, meta_batch=2, inner_steps=1, hidden=4, depth=2)
    batch = bench.synthetic_batch(dataclasses.replace(shape, mixed=True), torch.device("cpu"))
    assert batch.n_way.tolist() == [2, 3] and not batch.is_uniform
    device = "cuda" if torch.cuda.is_available() else "cpu"
    paths = ["reference", "auto", "learner:protonet"]
    timings = bench.seconds_per_step(paths, "second", shape, device, 0, 1)
    assert set(timings) == set(paths) and all(t > 0 for t in timings.values())
    assert bench.peak_memory_mib("loop", "first", shape, device, steps=1) >= 0
    gflop = bench.gflop_per_step("reference", "second", shape, device)
    assert gflop > bench.gflop_per_step("reference", "first", shape, device) > 0
    results = [
        bench.Result(path, "second", path, t, 1 / t, gflop, gflop / t, 1.0, "test")
        for path, t in timings.items()
    ]
    text = bench.table(results, {"conv": 100.0, "sgemm": 200.0})
    assert "1.00x" in text and "3x3 convolution at 100 GFLOP/s" in text
    assert set(bench.machine_ceiling(device, 1, batch=8, size=64)) == {"conv", "sgemm"}


def test_the_loop_gives_the_same_bits_on_any_number_of_threads(make_batch, make_config) -> None:
    """Tasks spread over threads, each op single-threaded, summed in task order."""
    batch = make_batch((2, 5, 3, 4), k_shot=2, dtype=torch.float32)
    config = make_config(dtype="float32", batching="loop")
    runs = []
    for threads in (1, 2, 3):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            student = MetaLearner(config, seed=0)
            metrics = [student.meta_step(batch) for _ in range(2)]
            curves = student.evaluate(batch).task_query_loss
            assert torch.get_num_threads() == threads  # restored after the step
        finally:
            torch.set_num_threads(before)
        runs.append((metrics, curves, {k: p.detach().clone() for k, p in student.params.items()}))
    for metrics, curves, params in runs[1:]:
        assert metrics == runs[0][0]
        np.testing.assert_array_equal(curves, runs[0][1])
        assert all(torch.equal(params[k], runs[0][2][k]) for k in params)


def test_task_threads_setting_is_a_bool():
    from metacurriculum.student import StudentConfig

    assert StudentConfig(n_max=5).task_threads is True
    with pytest.raises(TypeError, match="task_threads must be True or False"):
        StudentConfig(n_max=5, task_threads="no")
