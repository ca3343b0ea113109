"""The task-threads experiment: its two modes compute the same step, and its accounting adds up."""

import pytest
import torch

from metacurriculum.benchmarks.experiments import student_speed, task_threads

TINY = student_speed.Shape(n_way=3, q_query=2, meta_batch=3, inner_steps=1, hidden=24, depth=2)
# wider than 16 filters: the loop path (narrower nets run grouped, without task threads)


def test_one_task_at_a_time_runs_in_order_with_every_thread(monkeypatch):
    """``task_threads=False`` never starts a task thread; an unknown mode is refused."""
    student, batch = task_threads._student("one task at a time", "second", TINY)
    assert student.population.ops.task_threads is False
    started = []
    monkeypatch.setattr(
        "metacurriculum.student.backends.ThreadPoolExecutor",
        lambda *a, **k: started.append(a) or pytest.fail("a task thread was started"),
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        student.meta_gradient(batch)
    finally:
        torch.set_num_threads(threads)
    assert started == []
    with pytest.raises(ValueError, match="one of"):
        task_threads._student("both", "second", TINY)


def test_task_threads_give_one_thread_s_bits():
    """Tasks in threads compute each task single-threaded: the bits of one thread. (One task
    at a time on two threads splits its ops over them, and rounds differently.)"""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        student, batch = task_threads._student("task threads", "second", TINY)
        assert student.population.batching == "loop"
        threaded = student.meta_gradient(batch)
        torch.set_num_threads(1)
        ordered, _ = task_threads._student("one task at a time", "second", TINY)
        ordered = ordered.meta_gradient(batch)
    finally:
        torch.set_num_threads(threads)
    assert threaded.keys() == ordered.keys()
    assert all(torch.equal(threaded[name], ordered[name]) for name in threaded)


def test_saved_tensors_of_a_task_split_into_inner_loop_and_query_pass():
    saved = task_threads.saved_mib("second", TINY)
    assert saved["inner loop"] > 0 and saved["query pass"] > 0
    assert saved["task"] == pytest.approx(saved["inner loop"] + saved["query pass"])
    first = task_threads.saved_mib("first", TINY)
    assert first["inner loop"] < saved["inner loop"]  # no second-order graph to keep
