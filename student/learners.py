"""The meta-learners: small strategies on the shared network, back-ends and population.

A learner says what one task contributes to a meta-step and how it is evaluated, for
``T`` tasks at once whose parameters are stacked on a leading axis (see
:mod:`~metacurriculum.student.backends`, which feeds them one exact task, a ``vmap``
or a grouped call, and :class:`~metacurriculum.student.Population`, which owns the
parameters and the outer optimiser, Adam, for every learner). A learner implements:

* :meth:`Learner.init_params`: its meta-parameters (the network's, by default);
* :meth:`Learner.outer_losses`: per task, a loss whose gradient with respect to the
  meta-parameters is the task's outer gradient, with the task's statistics;
* :meth:`Learner.curves`: per task, the query loss and accuracy before adaptation and
  after each inner step.

The learners here differ in three choices: which parameters adapt in the inner loop
(all of them: :class:`MAML`, :class:`MetaSGD`, :class:`Reptile`; the head only:
:class:`ANIL`), how an inner step is taken (a fixed rate, or :class:`MetaSGD`'s learnt
rate per parameter) and how the outer gradient is formed (through the inner loop,
second or first order, or :class:`Reptile`'s parameter difference); or there is no inner
loop at all (:class:`ProtoNet`). Every one runs on every back-end.

A learner of your own subclasses :class:`Learner` (or :class:`MAML`, overriding a hook)
with a :class:`~metacurriculum.student.settings.LearnerSettings` dataclass, and is
registered with :func:`~metacurriculum.student.settings.register_learner`.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from metacurriculum.student import network
from metacurriculum.student.backends import Ops, Stats, Tasks
from metacurriculum.student.config import StudentConfig
from metacurriculum.student.network import Params
from metacurriculum.student.settings import (
    LearnerSettings,
    MAMLSettings,
    MetaSGDSettings,
    ProtoNetSettings,
    ReptileSettings,
)

#: Prefix of Meta-SGD's learnt learning rates among the meta-parameters.
RATE = "lr/"
#: The head's parameters: the only ones ANIL adapts, the ones ProtoNet has none of.
HEAD = ("head.weight", "head.bias")


class Learner:
    """A meta-learner's strategy; subclasses implement :meth:`outer_losses` and :meth:`curves`.

    Args:
        settings: Its settings (an instance of :attr:`settings_class`); ``None`` takes
            the defaults.

    Attributes:
        settings_class: The :class:`LearnerSettings` subclass of its settings.
        adapts: Whether it adapts to a task with inner steps (an evaluation curve of a
            learner that does not is flat: the one value before and after "adaptation").
    """

    settings_class: ClassVar[type[LearnerSettings]] = LearnerSettings
    adapts: ClassVar[bool] = True

    def __init__(self, settings: LearnerSettings | None = None) -> None:
        settings = self.settings_class() if settings is None else settings
        if not isinstance(settings, LearnerSettings):
            raise TypeError(
                f"{type(self).__name__} takes a LearnerSettings, got {settings!r}; build one "
                "with metacurriculum.student.settings.learner_settings(name, kwargs)."
            )
        self.settings = settings

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings!r})"

    @property
    def eval_steps(self) -> int:
        """Inner steps an evaluation takes unless told otherwise (0 without an inner loop)."""
        return int(getattr(self.settings, "inner_steps", 0))

    def init_params(self, config: StudentConfig, generator: torch.Generator) -> Params:
        """Fresh meta-parameters, drawn from ``generator`` only (the network's, by default)."""
        return network.init_params(config, generator)

    def outer_losses(self, params: Params, tasks: Tasks, ops: Ops) -> tuple[Tensor, Stats]:
        """Per task, a loss whose gradient is the task's outer gradient, and its statistics.

        Args:
            params: ``[T, ...]`` each task's meta-parameters (differentiable).
            tasks: The ``T`` tasks.
            ops: The network and gradients of the back-end.

        Returns:
            ``[T]`` losses, and ``[T]`` detached ``query_loss``, ``query_acc`` (after
            adaptation) and ``support_loss`` (before adaptation).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement outer_losses().")

    def curves(
        self, params: Params, tasks: Tasks, ops: Ops, steps: int, final_only: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Per task, the query loss and accuracy before adaptation and after each inner step.

        Args:
            final_only: Only after the last step (a measurement needs no more).

        Returns:
            Two ``[T, steps + 1]`` tensors (``[T, 1]`` with ``final_only``), without graphs.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement curves().")

    def work(self, support: int, query: int) -> int:
        """Examples through the network (forward and backward) per task of a meta-step, with
        ``support`` and ``query`` examples: what the population's memory estimate scales."""
        return support + query


class MAML(Learner):
    """MAML (Finn et al., 2017), second or first order; ``fomaml`` is this with first order.

    Every network parameter adapts with ``inner_steps`` SGD steps of ``inner_lr`` on the
    support set; the outer loss is the adapted parameters' query loss, differentiated
    through the inner loop (or, first order, with the inner gradients as constants).

    The hooks :meth:`adapted`, :meth:`prepare`, :meth:`fast_logits` and :meth:`update`
    say which parameters adapt, what is computed once per set of images, how the fast
    weights score them and how an inner step is taken; :class:`ANIL` and
    :class:`MetaSGD` override them.
    """

    settings_class: ClassVar[type[LearnerSettings]] = MAMLSettings

    @property
    def first_order(self) -> bool:
        """Whether inner gradients are constants."""
        return bool(self.settings.first_order)  # type: ignore[attr-defined]

    def adapted(self, params: Params) -> list[str]:
        """The names of the parameters the inner loop adapts: every network parameter."""
        return [name for name in params if not name.startswith(RATE)]

    def prepare(self, params: Params, x: Tensor, mask: Tensor | None, ops: Ops) -> tuple:
        """What scoring ``x`` needs beyond the fast weights (MAML: the images themselves)."""
        return x, mask

    def fast_logits(self, params: Params, fast: Params, prepared: tuple, ops: Ops) -> Tensor:
        """Logits of the prepared images under the fast weights."""
        x, mask = prepared
        return ops.logits({**params, **fast}, x, mask)

    def update(self, params: Params, fast: Params, grads: Params) -> Params:
        """One inner SGD step of the fast weights."""
        lr = self.settings.inner_lr  # type: ignore[attr-defined]
        return {name: w - lr * grads[name] for name, w in fast.items()}

    def adapt(
        self, params: Params, tasks: Tasks, ops: Ops, steps: int, create_graph: bool
    ) -> tuple[Params, Tensor | None]:
        """The fast weights after ``steps`` inner steps on the support set, and the support
        loss before the first (``None`` for no step)."""
        inner = ops.differentiated_twice(create_graph)  # second order: fast double backward
        support = self.prepare(params, tasks.support_x, tasks.support_mask, inner)

        def support_loss(fast: Params) -> Tensor:
            logits = self.fast_logits(params, fast, support, inner)
            return inner.loss(logits, tasks.support_y, tasks.support_mask, tasks)

        fast = {name: params[name] for name in self.adapted(params)}
        first = None
        for _ in range(steps):
            loss, grads = inner.value_and_grad(support_loss, fast, create_graph)
            first = loss if first is None else first
            fast = self.update(params, fast, grads)
        return fast, first

    def outer_losses(self, params: Params, tasks: Tasks, ops: Ops) -> tuple[Tensor, Stats]:
        steps = self.settings.inner_steps  # type: ignore[attr-defined]
        fast, support_loss = self.adapt(params, tasks, ops, steps, not self.first_order)
        query = self.prepare(params, tasks.query_x, tasks.query_mask, ops)
        logits = self.fast_logits(params, fast, query, ops)
        loss = ops.loss(logits, tasks.query_y, tasks.query_mask, tasks)
        if support_loss is None:
            with torch.no_grad():
                support = self.prepare(params, tasks.support_x, tasks.support_mask, ops)
                support_logits = self.fast_logits(params, fast, support, ops)
                support_loss = ops.loss(support_logits, tasks.support_y, tasks.support_mask, tasks)
        return loss, query_stats(loss, logits, support_loss, tasks, ops)

    def curves(
        self, params: Params, tasks: Tasks, ops: Ops, steps: int, final_only: bool = False
    ) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            params = {name: p.detach() for name, p in params.items()}
            support = self.prepare(params, tasks.support_x, tasks.support_mask, ops)
            query = self.prepare(params, tasks.query_x, tasks.query_mask, ops)

        def support_loss(fast: Params) -> Tensor:
            logits = self.fast_logits(params, fast, support, ops)
            return ops.loss(logits, tasks.support_y, tasks.support_mask, tasks)

        fast = {name: params[name] for name in self.adapted(params)}
        losses, accuracies = [], []
        for step in range(steps + 1):
            if step == steps or not final_only:
                with torch.no_grad():
                    logits = self.fast_logits(params, fast, query, ops)
                    losses.append(ops.loss(logits, tasks.query_y, tasks.query_mask, tasks))
                    accuracies.append(ops.accuracy(logits, tasks.query_y, tasks.query_mask, tasks))
            if step < steps:
                _, grads = ops.value_and_grad(support_loss, fast, create_graph=False)
                with torch.no_grad():
                    fast = self.update(params, fast, grads)
        return torch.stack(losses, dim=1), torch.stack(accuracies, dim=1)

    def work(self, support: int, query: int) -> int:
        steps = self.settings.inner_steps  # type: ignore[attr-defined]
        # A second-order backward is itself differentiated: about three passes per step.
        return steps * support * (1 if self.first_order else 3) + query


class ANIL(MAML):
    """ANIL (Raghu et al., 2020): only the head adapts; the body is meta-learnt.

    The body's features of the support and query sets are computed once per task (the
    body does not change in the inner loop), so an inner step costs a linear layer.
    """

    def adapted(self, params: Params) -> list[str]:
        return list(HEAD)

    def prepare(self, params: Params, x: Tensor, mask: Tensor | None, ops: Ops) -> tuple:
        return (ops.features(params, x, mask),)

    def fast_logits(self, params: Params, fast: Params, prepared: tuple, ops: Ops) -> Tensor:
        return network.head(fast, prepared[0])

    def work(self, support: int, query: int) -> int:
        return support + query


class MetaSGD(MAML):
    """Meta-SGD (Li et al., 2017): a learnt learning rate for every parameter.

    The meta-parameters are the network's and, for each, a tensor of rates of the same
    shape (named ``lr/<name>``, starting at ``inner_lr``); an inner step is
    ``w - rate * grad``, and the outer gradient reaches the rates through it.
    """

    settings_class: ClassVar[type[LearnerSettings]] = MetaSGDSettings

    def init_params(self, config: StudentConfig, generator: torch.Generator) -> Params:
        params = super().init_params(config, generator)
        lr = self.settings.inner_lr  # type: ignore[attr-defined]
        rates = {RATE + name: torch.full_like(p, lr) for name, p in params.items()}
        return {**params, **rates}

    def update(self, params: Params, fast: Params, grads: Params) -> Params:
        return {name: w - params[RATE + name] * grads[name] for name, w in fast.items()}


class Reptile(MAML):
    """Reptile (Nichol et al., 2018): move the initialisation toward each task's adapted weights.

    A task's weights take ``inner_steps`` SGD steps of ``inner_lr`` on all of its
    examples (support and query: Reptile has no query loss; Nichol et al. train on a
    training task's every example), with no gradient through the steps. The outer
    gradient is the parameter difference ``θ - φ_task``, averaged over the meta-batch
    (formed as the gradient of ``Σ θ · sg(θ - φ)``), and the population's Adam takes it
    as it takes MAML's meta-gradient. Evaluation adapts on the support set, as MAML's.

    In a meta-step's statistics, ``support_loss`` is the loss on the task's examples
    before adaptation and ``query_loss``/``query_acc`` after it (on the same examples,
    which it trained on).
    """

    settings_class: ClassVar[type[LearnerSettings]] = ReptileSettings
    first_order = True

    def outer_losses(self, params: Params, tasks: Tasks, ops: Ops) -> tuple[Tensor, Stats]:
        x, y, mask = tasks.examples()
        prepared = (x, mask)

        def loss_of(fast: Params) -> Tensor:
            return ops.loss(self.fast_logits(params, fast, prepared, ops), y, mask, tasks)

        fast = {name: params[name].detach() for name in self.adapted(params)}
        first = None
        for _ in range(self.settings.inner_steps):  # type: ignore[attr-defined]
            loss, grads = ops.value_and_grad(loss_of, fast, create_graph=False)
            first = loss if first is None else first
            fast = {name: w.detach() for name, w in self.update(params, fast, grads).items()}
        with torch.no_grad():
            logits = self.fast_logits(params, fast, prepared, ops)
            after = ops.loss(logits, y, mask, tasks)
            accuracy = ops.accuracy(logits, y, mask, tasks)
        surrogate = sum(
            (params[name] * (params[name].detach() - w)).flatten(1).sum(dim=1)
            for name, w in fast.items()
        )
        stats = {
            "query_loss": after,
            "query_acc": accuracy,
            "support_loss": after if first is None else first,
        }
        return surrogate, stats  # type: ignore[return-value]

    def work(self, support: int, query: int) -> int:
        return self.settings.inner_steps * (support + query) + support + query  # type: ignore[attr-defined]


class ProtoNet(Learner):
    """Prototypical networks (Snell et al., 2017): no inner loop, no head.

    The network's body embeds a task's support and query images in one batch (batch
    norm over both, as Snell et al.'s code embeds them); a class's prototype is the
    mean embedding of its support images, and a query is scored by the negative squared
    Euclidean distance to each prototype. The outer loss is the query cross entropy.

    It does not adapt: an evaluation's "after every inner step" values are all the one
    value (``eval_steps`` is 0, so the curve has one point unless more are asked for).
    A meta-step's ``support_loss`` is the support images' loss against the prototypes.
    """

    settings_class: ClassVar[type[LearnerSettings]] = ProtoNetSettings
    adapts: ClassVar[bool] = False

    def init_params(self, config: StudentConfig, generator: torch.Generator) -> Params:
        params = super().init_params(config, generator)
        return {name: p for name, p in params.items() if name not in HEAD}

    def logits(self, params: Params, tasks: Tasks, ops: Ops) -> tuple[Tensor, Tensor]:
        """``[T, S, classes]`` support and ``[T, P, classes]`` query logits: minus the
        squared distances to the prototypes."""
        x, _, mask = tasks.examples()
        embedded = ops.features(params, x, mask)
        support = embedded[:, : tasks.support_x.shape[1]]
        query = embedded[:, tasks.support_x.shape[1] :]
        onehot = F.one_hot(tasks.support_y, tasks.classes).to(embedded.dtype)
        if tasks.support_mask is not None:
            onehot = onehot * tasks.support_mask[..., None].to(embedded.dtype)
        counts = onehot.sum(dim=1).clamp(min=1.0)
        prototypes = onehot.transpose(1, 2) @ support / counts[..., None]
        return _neg_sq_distance(support, prototypes), _neg_sq_distance(query, prototypes)

    def outer_losses(self, params: Params, tasks: Tasks, ops: Ops) -> tuple[Tensor, Stats]:
        support_logits, query_logits = self.logits(params, tasks, ops)
        loss = ops.loss(query_logits, tasks.query_y, tasks.query_mask, tasks)
        with torch.no_grad():
            support_loss = ops.loss(support_logits, tasks.support_y, tasks.support_mask, tasks)
        return loss, query_stats(loss, query_logits, support_loss, tasks, ops)

    def curves(
        self, params: Params, tasks: Tasks, ops: Ops, steps: int, final_only: bool = False
    ) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            _, logits = self.logits(params, tasks, ops)
            loss = ops.loss(logits, tasks.query_y, tasks.query_mask, tasks)
            accuracy = ops.accuracy(logits, tasks.query_y, tasks.query_mask, tasks)
        points = 1 if final_only else steps + 1
        return (
            loss[:, None].expand(-1, points).contiguous(),
            accuracy[:, None].expand(-1, points).contiguous(),
        )


def query_stats(
    loss: Tensor, logits: Tensor, support_loss: Tensor, tasks: Tasks, ops: Ops
) -> Stats:
    """A meta-step's per-task statistics from its query ``loss`` and ``logits``."""
    return {
        "query_loss": loss.detach(),
        "query_acc": ops.accuracy(logits, tasks.query_y, tasks.query_mask, tasks),
        "support_loss": support_loss,
    }


def _neg_sq_distance(points: Tensor, prototypes: Tensor) -> Tensor:
    """``-|p - c|^2`` for ``[T, N, F]`` points and ``[T, K, F]`` prototypes: ``[T, N, K]``."""
    cross = points @ prototypes.transpose(1, 2)
    return 2 * cross - points.square().sum(-1, keepdim=True) - prototypes.square().sum(-1)[:, None]
