"""The MAML student behind the environment: data, task distributions and the meta-learner."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from metacurriculum.envs.config import MetaCurriculumConfig
from metacurriculum.envs.data import load_dataset
from metacurriculum.envs.families import make_family
from metacurriculum.envs.students import AdaptationCurves, Measurement, chance_loss
from metacurriculum.envs.tasks import FamilyTasks, TaskDistribution
from metacurriculum.student import MAML, Evaluation, StudentConfig
from metacurriculum.student.hyperparams import HYPERPARAMS


def student_config(config: MetaCurriculumConfig) -> StudentConfig:
    """The :class:`StudentConfig` an env's settings describe: the network's shape and
    device, and every MAML hyper-parameter (:data:`HYPERPARAMS`) under its own name."""
    hyperparams = {name: getattr(config, name) for name in HYPERPARAMS}
    return StudentConfig(
        n_max=config.n_max,
        hidden=config.hidden,
        depth=config.depth,
        device=config.device,
        **hyperparams,
    )


def _measurement(evaluation: Evaluation) -> Measurement:
    loss = evaluation.task_query_loss[:, -1]
    chance = np.array([chance_loss(n) for n in evaluation.n_way])
    return Measurement(
        loss=float(loss.mean()),
        accuracy=float(evaluation.task_query_acc[:, -1].mean()),
        normalized_loss=float((loss / chance).mean()),
        n_way=tuple(int(n) for n in evaluation.n_way),
    )


class MAMLStudent:
    """A MAML meta-learner trained on tasks drawn at ω (the env's real student).

    Meta-training tasks come from the training split; validation tasks (the
    observation) and the fixed target tasks (the reward) from the meta-validation
    split, whose classes (Omniglot characters) or images (MNIST) are held out from
    training; final evaluation tasks from the test split.

    Args:
        config: the env's settings.
        seed: seeds the network initialisation and every task stream, each from its
            own generator, so that adding validation never changes training tasks.
    """

    def __init__(self, config: MetaCurriculumConfig, seed: int) -> None:
        self.config = config
        self.maml = MAML(student_config(config), seed=seed % 2**63)
        device = self.maml.device
        self.train_tasks, self.val_tasks, self.test_tasks = self.task_distributions(config)
        streams = np.random.SeedSequence(seed).generate_state(3)
        self.train_gen, self.val_gen, target_gen = (
            torch.Generator(device=device).manual_seed(int(s)) for s in streams
        )
        self.target_batch = self.val_tasks.sample_hardest(config.target_tasks, target_gen)

    @staticmethod
    def task_distributions(
        config: MetaCurriculumConfig,
    ) -> tuple[FamilyTasks, FamilyTasks, FamilyTasks]:
        """The train, validation and test task distributions of ``config``, tasks of its
        family (the data is loaded once per process and device).

        Raises:
            DataNotFoundError: when the data set is missing.
            ValueError: when a split cannot supply the tasks (too few classes or images),
                or the device is unknown.
        """
        device = student_config(config).torch_device
        options = {"protocol": config.omniglot_protocol} if config.dataset == "omniglot" else {}
        splits = load_dataset(
            config.dataset, config.data_root, download=config.download, device=device, **options
        )
        task_args = {"n_max": config.n_max, "k_shot": config.k_shot, "q_query": config.q_query}
        task_args.update(omega_noise=config.omega_noise, n_min=config.n_min)
        family = make_family(config)
        train, val = (TaskDistribution(split, **task_args) for split in (splits.train, splits.val))
        test = TaskDistribution(splits.test, **{**task_args, "q_query": config.eval_q_query})
        return FamilyTasks(family, train), FamilyTasks(family, val), FamilyTasks(family, test)

    @classmethod
    def check(cls, config: MetaCurriculumConfig) -> None:
        """Fail now, with the fix in the message, on settings a student could not run with."""
        cls.task_distributions(config)

    def train(self, omega: float | np.ndarray, meta_steps: int) -> dict[str, Any]:
        losses, accuracies, n_way = [], [], []
        for _ in range(meta_steps):
            batch = self.train_tasks.sample(omega, self.config.meta_batch, self.train_gen)
            metrics = self.maml.meta_step(batch)
            losses.append(metrics["student/query_loss"])
            accuracies.append(metrics["student/query_acc"])
            n_way.extend(batch.n_way.tolist())
        return {
            "loss": float(np.mean(losses)),
            "accuracy": float(np.mean(accuracies)),
            "n_way": n_way,
        }

    def validate(self, omega: float | np.ndarray) -> Measurement:
        batch = self.val_tasks.sample(omega, self.config.val_tasks, self.val_gen)
        return _measurement(self.maml.evaluate(batch))

    def evaluate_target(self) -> Measurement:
        return _measurement(self.maml.evaluate(self.target_batch))

    def evaluate_test(self, num_tasks: int, seed: int) -> AdaptationCurves:
        generator = torch.Generator(device=self.maml.device).manual_seed(seed)
        evaluation = self.maml.evaluate(self.test_tasks.sample_hardest(num_tasks, generator))
        return AdaptationCurves(
            loss=evaluation.task_query_loss,
            accuracy=evaluation.task_query_acc,
            n_way=np.asarray(evaluation.n_way),
        )

    def save(self, path: str) -> None:
        self.maml.save(path)
