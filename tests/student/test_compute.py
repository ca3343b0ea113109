"""The student's compute: counted FLOPs are what torch counts on real meta-steps and
measurements, for every learner, with mixed n; the shipped table is what a count gives."""

from __future__ import annotations

import json

import pytest
from torch.utils.flop_counter import FlopCounterMode

import metacurriculum  # noqa: F401 - registers the ids
from metacurriculum.envs import MetaCurriculumConfig
from metacurriculum.envs.compute import student_compute
from metacurriculum.envs.learner_student import student_config
from metacurriculum.student import Population, StudentConfig
from metacurriculum.student import compute as compute_module
from metacurriculum.student.compute import (
    KINDS,
    StudentCompute,
    count_task_flops,
    network_key,
    registered_networks,
    table_entries,
    task_flops,
)
from metacurriculum.student.flop_table import COUNTED
from metacurriculum.student.settings import list_learners

# FlopCounterMode sees the ops of its own thread: one torch thread keeps every task there.
pytestmark = pytest.mark.usefixtures("single_thread")

#: Every registered learner, and MAML at first order.
CASES = {name: (name, {}) for name in list_learners()} | {
    "maml-first": ("maml", {"first_order": True})
}
#: Two students' tasks: mixed n, some beyond the four sizes that are counted.
N_WAY = ((1, 3, 6, 2), (5, 5, 4))
TASKS = [n for row in N_WAY for n in row]


def counted(call) -> int:
    with FlopCounterMode(display=False) as counter:
        call()
    return counter.get_total_flops()


@pytest.mark.parametrize("case", CASES)
def test_flops_are_what_torch_counts_on_real_meta_steps_and_measurements(
    case, make_batch, make_config
):
    name, kwargs = CASES[case]
    config = make_config(name, **kwargs, memory_format="contiguous", batching="loop")
    population = Population(config, seeds=[0, 1])
    batches = [make_batch(n, k_shot=2, q_query=3, seed=i) for i, n in enumerate(N_WAY)]
    compute = StudentCompute.of(config, k_shot=2, q_query=3)
    assert counted(lambda: population.meta_step(batches)) == compute.meta_step(TASKS) > 0
    measure = counted(lambda: population.evaluate(batches, final_only=True))
    assert measure == compute.measurement(TASKS) > 0
    assert counted(lambda: population.evaluate(batches)) == compute.evaluation(TASKS) >= measure


def test_the_grouped_path_computes_the_padding_too(make_batch, make_config):
    """Grouped calls pad every task to the batch's largest: more work than the tasks', which
    is what the student is charged."""
    config = make_config("maml", memory_format="contiguous", batching="grouped")
    population = Population(config, seeds=[0, 1])
    batches = [make_batch(n, k_shot=2, q_query=3, seed=i) for i, n in enumerate(N_WAY)]
    compute = StudentCompute.of(config, k_shot=2, q_query=3)
    assert counted(lambda: population.meta_step(batches)) > compute.meta_step(TASKS)


def test_flops_grow_with_the_classes_as_the_docs_say():
    """A 2-way task costs a tenth of a 20-way one (MAML on Table I's network: the table)."""
    compute = StudentCompute.of(StudentConfig(n_max=20, device="cpu"), k_shot=1, q_query=15)
    assert compute.meta_step([2] * 8) * 10 == compute.meta_step([20] * 8) == 277652275200
    assert compute.meta_step([2, 20]) == compute.meta_step([2]) + compute.meta_step([20])
    assert compute.meta_step([]) == 0


def test_a_learner_whose_flops_are_not_quadratic_is_counted_at_every_n(monkeypatch):
    calls = []

    def fake_count(fields, kind, n, k_shot, q_query):
        calls.append(n)
        return n**3 if fields["learner"] == "cubic" else 3 * n * n + 2 * n + 7

    monkeypatch.setattr(compute_module, "count_task_flops", fake_count)
    monkeypatch.setattr(compute_module, "_fits", {})
    monkeypatch.setattr(compute_module, "_counts", {})
    assert task_flops({"learner": "quadratic"}, "meta_step", 9, 1, 1) == 3 * 81 + 18 + 7
    assert sorted(calls) == [1, 2, 3, 4]  # the quadratic, confirmed: no count at n = 9
    calls.clear()
    assert task_flops({"learner": "cubic"}, "meta_step", 9, 1, 1) == 729
    assert sorted(calls) == [1, 2, 3, 4, 9]


def test_every_registered_id_s_student_ships_in_the_table():
    """The analytic ids report their compute without importing torch, and no run of a
    registered id counts at its start."""
    shipped = {(network_key(e["network"]), e["kind"], e["k_shot"], e["q_query"]) for e in COUNTED}
    for fields, k_shot, q_query, eval_q_query in registered_networks():
        for kind in KINDS:
            q = eval_q_query if kind == "evaluate" else q_query
            assert (network_key(fields), kind, k_shot, q) in shipped, (fields, kind)


def test_the_table_is_what_a_count_gives():
    """Each shipped quadratic recounted at n = 2 (the slow test recounts it all): a change
    to a learner or the network that changes its FLOPs fails here until
    ``python -m metacurriculum.student.compute`` writes the table anew."""
    for entry in COUNTED:
        got = count_task_flops(
            entry["network"], entry["kind"], 2, entry["k_shot"], entry["q_query"]
        )
        assert got == entry["flops_at_n_1_2_3"][1], entry


@pytest.mark.slow
def test_the_whole_table_is_recounted_as_it_ships():
    def canonical(entries):
        return sorted(json.dumps(e, sort_keys=True) for e in entries)

    assert canonical(table_entries(registered_networks())) == canonical(COUNTED)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"n_max": 5, "hidden": 16, "depth": 3}, {"learner": "anil", "inner_steps": 2}],
    ids=["defaults", "small-net", "anil"],
)
def test_an_env_s_student_compute_is_its_student_s(overrides):
    """The torch-free compute of an env's settings is that of the student they build."""
    config = MetaCurriculumConfig.from_overrides(k_shot=2, q_query=4, device="cpu", **overrides)
    expected = StudentCompute.of(student_config(config), 2, 4, config.eval_q_query)
    assert student_compute(config) == expected


def test_bad_kinds_and_sizes_name_the_value():
    fields = StudentCompute.of(StudentConfig(n_max=5, device="cpu"), 1, 1).network
    with pytest.raises(ValueError, match="kind='train'"):
        count_task_flops(fields, "train", 2, 1, 1)
    with pytest.raises(ValueError, match="n=0"):
        task_flops(fields, "meta_step", 0, 1, 1)
