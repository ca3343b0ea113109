"""Learning sanity on the real data: a few dozen meta-steps of 5-way 1-shot Omniglot help."""

import torch

from metacurriculum.envs.data import load_dataset
from metacurriculum.envs.tasks import TaskDistribution
from metacurriculum.student import MAML, StudentConfig


def test_meta_training_raises_accuracy_on_held_out_characters():
    splits = load_dataset("omniglot", device="cpu")
    train = TaskDistribution(splits.train, n_max=5, k_shot=1, q_query=5)
    test = TaskDistribution(splits.test, n_max=5, k_shot=1, q_query=5)
    config = StudentConfig(
        n_max=5, hidden=32, depth=4, inner_steps=3, inner_lr=0.4, meta_lr=0.003, device="cpu"
    )
    student = MAML(config, seed=0)
    test_tasks = test.sample(5.0, 40, torch.Generator().manual_seed(1))
    before = student.evaluate(test_tasks)
    gen = torch.Generator().manual_seed(2)
    for _ in range(40):
        student.meta_step(train.sample(5.0, 4, gen))
    after = student.evaluate(test_tasks)
    # Post-adaptation accuracy on unseen evaluation-alphabet characters, chance = 0.2.
    assert after.query_acc[-1] > before.query_acc[-1] + 0.15, (before.query_acc, after.query_acc)
    assert after.query_loss[-1] < before.query_loss[-1]
