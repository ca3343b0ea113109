"""The teachers of "Teaching Your MAML" (section IV): the static and the adaptive teacher.

Both read the normalised meta-validation loss ``info["val_loss_normalized"]`` (loss
divided by the chance level ``log n``), so one threshold or target serves every n.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from metacurriculum.teachers.base import OmegaTeacher, register_teacher
from metacurriculum.teachers.schedules import check_fraction, corners, ramp


@register_teacher("static")
@dataclass(eq=False)
class StaticTeacher(OmegaTeacher):
    """Climb a fixed ladder of ω, one rung whenever the student is below a loss threshold.

    Section IV-A: "whenever the student model's meta validation loss goes below a
    specific threshold, we switch to the next, slightly harder set of tasks ... until
    we reach the final, most difficult set". Choices where the paper is silent:

    - The ladder defaults to every integer from ``omega_min`` to ``omega_max`` (read
      from ``info`` on the first ``act``), so on an N-way env each rung adds a class.
    - A measurement counts towards a rung only when it was taken at that rung (within
      ``1e-3``; half an ``omega_step`` for ``Discrete`` actions, which may need several
      steps to reach it). The measurement ``reset`` returns, of an untrained student,
      does not count.
    - ``patience`` consecutive counted measurements below ``threshold`` move to the
      next rung and restart the count; one at or above it restarts the count.
    - At the top rung the teacher stays for the rest of the episode.

    The threshold, measured on the real student (``benchmarks/experiments/measure_reduced.py``:
    the 'reduced' preset, Omniglot 5-way 1-shot, 16 filters x 3 blocks, first-order,
    200 meta-steps = 50 env steps, CPU; seed 0 unless noted). Under ``none`` the
    normalised validation loss at ``omega_max`` falls from 0.61 (mean of the first 10
    env steps) to 0.38 (last 10); its quartiles over the run are 0.41 / 0.49 / 0.57
    (seed 1: 0.37 / 0.43 / 0.53). Under ``linear`` the loss at ω = 2 starts at 0.80:
    normalised by ``log 2``, 2-way tasks look harder than 5-way ones early on. The
    rule: a rung is learnt when the student does as well there as plain MAML does on
    the hardest tasks after a quarter of its training, the upper quartile, 0.55
    (mean of the two seeds). With it the teacher reached the top rung after 9 of the
    50 env steps and its student scored a test loss of 0.667 (100 unseen 5-way tasks;
    ``none``: 0.636 and 0.668 for seeds 0 and 1); with the analytic student's 0.5 it
    reached the top after 13 and scored 0.747, as ``linear`` did (0.747, 0.760)::

        python benchmarks/experiments/measure_reduced.py none linear 'static:{"threshold": 0.5}' \\
            'static:{"threshold": 0.55}' --seeds 0

    Args:
        ladder: the ω values, easiest first; ``None`` for the integers of the ω range.
        threshold: the normalised validation loss to beat (0.55: above). On the analytic
            student 0.5 is the point where the skill has reached the rung (its loss is
            ``sigmoid((n - skill) / tau)``).
        patience: consecutive measurements below ``threshold`` needed to move up.
    """

    ladder: Sequence[float] | None = None
    threshold: float = 0.55
    patience: int = 1

    def __post_init__(self) -> None:
        if self.ladder is not None:
            rungs = [float(w) for w in self.ladder]
            if not rungs or any(not math.isfinite(w) for w in rungs):
                raise ValueError(f"ladder={self.ladder!r} must be a non-empty list of numbers.")
            if any(b <= a for a, b in itertools.pairwise(rungs)):
                raise ValueError(
                    f"ladder={self.ladder!r} must increase strictly (easiest ω first)."
                )
            self.ladder = rungs
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            raise ValueError(f"threshold={self.threshold!r} must be a positive normalised loss.")
        if not isinstance(self.patience, int) or self.patience < 1:
            raise ValueError(f"patience={self.patience!r} must be an integer >= 1.")

    def on_reset(self) -> None:
        self.rungs: list[float] | None = None if self.ladder is None else list(self.ladder)
        self.rung = 0
        self.below = 0

    def choose_omega(self, observation: np.ndarray, info: Mapping[str, Any]) -> float:
        if self.rungs is None:
            low, high = math.ceil(info["omega_min"]), math.floor(info["omega_max"])
            self.rungs = [float(w) for w in range(low, high + 1)]
        measured = self.measured(info)
        if measured is not None and self.rung < len(self.rungs) - 1:
            omega, loss = measured
            if abs(omega - self.rungs[self.rung]) <= self._tolerance(info):
                self.below = self.below + 1 if loss < self.threshold else 0
                if self.below >= self.patience:
                    self.rung += 1
                    self.below = 0
        return self.rungs[self.rung]

    def _tolerance(self, info: Mapping[str, Any]) -> float:
        if isinstance(self.action_space, spaces.Discrete):
            return 0.5 * float(info.get("omega_step", 1.0))
        return 1e-3  # Box actions are float32: ω lands within about 1e-6 of the rung


#: The floors the adaptive teacher can put under its base ω (see :class:`AdaptiveTeacher`).
FLOORS = ("none", "linear", "gated")
#: The validation losses the adaptive teacher can read: ``info`` key by name.
LOSSES = {"normalized": "val_loss_normalized", "raw": "val_loss"}


@register_teacher("adaptive")
@dataclass(eq=False)
class AdaptiveTeacher(OmegaTeacher):
    """The paper's adaptive teacher: signed finite-difference descent on the task parameters.

    Section IV-B and Algorithm 1, read as follows. The teacher keeps a base ω and each
    step proposes ``ω_t = base + u_t``, ``u_t ~ U(-perturbation, perturbation)`` (the
    uniform-noise perturbation that makes the finite differences possible). It records
    the pairs ``(ω_t, L_t)``, ``L_t`` the normalised validation loss measured at
    ``ω_t``, and estimates the difficulty gradient ``∇ψ ≈ dL/dω`` from the last
    ``window`` pairs ("information over more than two timesteps"): the least-squares
    slope of the consecutive differences, ``Σ ΔL·Δω / Σ Δω²``, ignoring pairs with
    ``|Δω| < min_delta``. It descends the objective ``J(ω) = ½ (L(ω) - target_loss)²``,
    whose gradient is ``∇J = (L_t - target_loss) · ∇ψ``: when ``|∇J| > threshold`` it
    moves the base by ``step`` (Table I's teacher gradient step, 2) in the direction
    ``-sign(∇J)`` ("only the sign ... update each parameter in that direction by a
    pre-specified amount"), clipped to the ω range. Hence, where the loss rises with ω,
    a student that over-performs (``L < target_loss``) gets harder tasks and one that
    under-performs gets easier ones (requirements 1 and 2); where the loss falls with
    ω it is the reverse (requirement 3). ``target_loss=0`` is Algorithm 1's line 9 read
    literally, ``ω ← ω - step · sign(dL/dω)``: descend the loss itself.

    ``L`` is the validation loss divided by the chance level ``log n`` (``loss=
    "normalized"``, so that one ``target_loss`` serves every n), or the loss itself
    (``loss="raw"``, the paper's "meta validation loss"). Table I's teacher update rate
    (4) is the env's ``update_rate`` (meta-steps per env step), so this teacher updates on
    every ``act``.

    A vector ω (a task family with several parameters) is the paper's general case: the
    teacher perturbs every coordinate, estimates each partial derivative by the same
    least squares (``∇ψ = (ΔΩᵀΔΩ + prior_weight I)⁻¹ (ΔΩᵀΔL + prior_weight prior_slope)``
    over the window), and steps each coordinate whose ``|∂J/∂ω_j|`` exceeds ``threshold``
    by ``step`` in the direction ``-sign``. Every length (``step``, ``perturbation``,
    ``min_delta``, the slope's ω) is in units of each coordinate's ``unit``
    (``info["omega_unit"]``: one class for the number of classes), and each coordinate
    is oriented so that its hardest end is "up" (the prior says difficulty rises
    towards it; the floor pushes towards it).

    Choices beyond the paper (``adaptive-paper``, :class:`PaperAdaptiveTeacher`, turns
    the first and third off):

    - A prior that difficulty rises with ω: the slope estimate is the ridge (maximum a
      posteriori) one, ``(Σ ΔL·Δω + prior_weight · prior_slope) / (Σ Δω² + prior_weight)``.
      With few points, or where the loss is flat in ω (far above or below the
      student's level), it leans on ``prior_slope > 0`` instead of holding still; a
      clear measured slope, of either sign, outweighs it.
    - ``∇J`` uses the latest measurement only, so the teacher reacts at once to a
      step that proved too hard; the window smooths ``∇ψ``, not the loss.
    - A floor under the base ω, for requirement 4 ("the teacher should eventually push
      the student to explore more difficult tasks"), chosen by ``floor``:

      ========= ==================================================================
      floor     the base ω never falls below
      ========= ==================================================================
      "none"    ``omega_min``: the teacher's own decisions alone set ω
      "linear"  a line from ``omega_min`` at the start of the budget to ``omega_max``
                at ``push_until`` of it (``info["meta_step"] / info["budget"]``):
                a schedule; where the student never meets ``target_loss`` it is the
                ``linear`` teacher with noise
      "gated"   the same line, but its clock runs only during steps whose
                measurement was below ``target_loss`` (the student doing well): a
                ratchet that keeps what was mastered and never pushes a student
                that struggles
      ========= ==================================================================

      :meth:`summary` reports ``teacher/own_decision_fraction``, the fraction of
      steps at which the teacher's own decision, not the floor, set the base ω, and
      ``teacher/up_fraction`` / ``teacher/down_fraction``, how often the decision was
      a step up or down.

    Measured on the real student (``benchmarks/experiments/measure_reduced.py``: the 'reduced'
    preset, Omniglot 5-way 1-shot, 16 filters x 3 blocks, first-order, 200 meta-steps =
    50 env steps, CPU, seed 0; test loss on 100 unseen 5-way tasks, ``none``: 0.636 and
    0.668 for seeds 0 and 1, ``linear``: 0.747 and 0.760). ``target_loss = 0.55`` by the
    rule of :class:`StaticTeacher` (the upper quartile of the normalised validation loss
    at ``omega_max`` under ``none``). At these settings the teacher's own decisions set
    ω: the normalised loss of 2-way tasks starts near 0.8, above that of 5-way tasks
    (0.6), so the measured ``dL/dω`` is negative and the teacher climbs from ``omega_min``
    to ``omega_max`` within 5 steps (mean ω of the first 10 steps: 4.0 to 4.2 of 5):

    ============================ ========= ============ ======== ==========
    setting                      test loss own decision up steps down steps
    ============================ ========= ============ ======== ==========
    floor="linear" (adaptive)    0.671     0.94         0.44     0.10
    floor="none"                 0.719     1.00         0.32     0.08
    floor="gated"                0.702     0.92         0.30     0.08
    adaptive-paper               0.705     1.00         0.46     0.06
    ============================ ========= ============ ======== ==========

    With ``target_loss = 0.5`` the same four scored 0.680, 0.672, 0.693 and 0.709, own
    decision 0.94, 1.00, 0.88, 1.00. Every setting did worse than ``none`` on the same
    seed (0.636); one seed each, and ``none``'s two seeds differ by 0.03, so these runs
    do not rank the settings among themselves. Command::

        python benchmarks/experiments/measure_reduced.py 'adaptive:{"target_loss": 0.55}' \\
            'adaptive:{"target_loss": 0.55, "floor": "none"}' \\
            'adaptive:{"target_loss": 0.55, "floor": "gated"}' \\
            'adaptive-paper:{"target_loss": 0.55}' --seeds 0

    Defaults: ``target_loss`` (above), ``step = 2`` (Table I), ``perturbation = 0.75``
    (ω spreads over 1.5 classes, enough for finite differences, small next to
    ``step``), ``window = 6``, ``threshold = 0.005`` (holds while ``|L - target_loss|``
    is below about 0.04 at the analytic student's typical slope of 0.125 per class),
    ``prior_slope = 0.05`` per unit of ω and ``prior_weight = 2`` (on a flat loss the
    estimate is then about 0.025, enough to step down from a plateau of chance-level
    loss; without the prior a teacher started at ``n_max`` on the analytic student
    never moves).

    Args:
        target_loss: the normalised validation loss the teacher steers the student to.
        step: how far one update moves the base ω.
        perturbation: half-width of the uniform noise added to the base ω.
        window: measurements used for the slope (at least 2).
        threshold: ``|∇J|`` below which the teacher holds the base.
        prior_slope: prior ``dL/dω``; 0 means no prior (hold until the data speak).
        prior_weight: weight of the prior, in units of ``Σ Δω²``; 0 for none.
        min_delta: consecutive pairs closer than this in ω are ignored.
        floor: ``"none"``, ``"linear"`` or ``"gated"`` (see above).
        push_until: the fraction of the budget (of its clock, for ``"gated"``) at
            which the floor reaches ``omega_max``.
        loss: ``"normalized"`` (the validation loss / ``log n``) or ``"raw"``.
    """

    target_loss: float = 0.55
    step: float = 2.0
    perturbation: float = 0.75
    window: int = 6
    threshold: float = 0.005
    prior_slope: float = 0.05
    prior_weight: float = 2.0
    min_delta: float = 0.05
    floor: str = "linear"
    push_until: float = 0.75
    loss: str = "normalized"
    vector = True

    def __post_init__(self) -> None:
        for name in ("target_loss", "step", "perturbation", "threshold", "prior_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}={value!r} must be a finite number >= 0.")
        if not math.isfinite(self.prior_slope):
            raise ValueError(f"prior_slope={self.prior_slope!r} must be a finite number.")
        if not (math.isfinite(self.min_delta) and self.min_delta > 0):
            raise ValueError(f"min_delta={self.min_delta!r} must be a finite number > 0.")
        if self.floor not in FLOORS:
            raise ValueError(f"floor={self.floor!r} is unknown; choose one of {FLOORS}.")
        if self.loss not in LOSSES:
            raise ValueError(f"loss={self.loss!r} is unknown; choose one of {tuple(LOSSES)}.")
        check_fraction("push_until", self.push_until)
        if not isinstance(self.window, int) or self.window < 2:
            raise ValueError(
                f"window={self.window!r} must be an integer >= 2 (two points per slope)."
            )

    def on_reset(self) -> None:
        self.base: Any = None  # in oriented units (see _frame); ω's form for one coordinate
        self.history: deque[tuple[np.ndarray, float]] = deque(maxlen=self.window)
        self.difficulty_gradient: Any = float("nan")
        self.objective_gradient: Any = float("nan")
        self.good_meta_steps = 0.0  # the gated floor's clock
        self._meta_step = 0.0
        self.decisions = {"own": 0, "floor": 0, "up": 0, "down": 0}

    def _frame(self, info: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``scale`` (ω = x * scale: the unit, negative where the low end is hardest) and
        the bounds of x, the coordinates in which harder is up. For the number of classes
        ``scale = 1`` and x is ω itself."""
        low = np.atleast_1d(np.asarray(info["omega_min"], dtype=float))
        high = np.atleast_1d(np.asarray(info["omega_max"], dtype=float))
        unit = np.atleast_1d(np.asarray(info.get("omega_unit", 1.0), dtype=float))
        hardest = np.atleast_1d(np.asarray(info.get("omega_hardest", high), dtype=float))
        scale = np.where(hardest >= high, unit, -unit)
        a, b = low / scale, high / scale
        return scale, np.minimum(a, b), np.maximum(a, b)

    def choose_omega(self, observation: np.ndarray, info: Mapping[str, Any]) -> Any:
        scale, x_low, x_high = self._frame(info)
        if self.base is None:
            self.base = np.atleast_1d(np.asarray(info["omega"], dtype=float)) / scale
        measured = self.measured(info)
        if measured is not None and self.loss == "raw":
            raw = float(info[LOSSES["raw"]])
            measured = (measured[0], raw) if math.isfinite(raw) else None
        if measured is not None:
            x = np.atleast_1d(np.asarray(measured[0], dtype=float)) / scale
            self.history.append((x, measured[1]))
            gradient = np.atleast_1d(self.estimate_gradient())
            objective = (measured[1] - self.target_loss) * gradient
            self.difficulty_gradient = self._public(gradient)
            self.objective_gradient = self._public(objective)
            moving = np.abs(objective) > self.threshold
            if moving.any():
                move = np.where(moving, -np.copysign(self.step, objective), 0.0)
                self.decisions["up"] += int((move > 0).any())
                self.decisions["down"] += int((move < 0).any())
                self.base = np.clip(self.base + move, x_low, x_high)
            if measured[1] < self.target_loss:
                self.good_meta_steps += float(info["meta_step"]) - self._meta_step
        self._meta_step = float(info["meta_step"])
        floor = np.atleast_1d(np.asarray(self.floor_omega(info), dtype=float)) / scale
        if (floor > self.base).any():
            self.decisions["floor"] += 1
            self.base = np.maximum(self.base, floor)
        else:
            self.decisions["own"] += 1
        noise = self.rng.uniform(-self.perturbation, self.perturbation, size=self.base.shape)
        return np.clip((self.base + noise) * scale, info["omega_min"], info["omega_max"])

    def _public(self, value: np.ndarray) -> Any:
        return float(value[0]) if value.size == 1 else value

    def floor_omega(self, info: Mapping[str, Any]) -> Any:
        """The lowest base ω allowed now (see ``floor``): from the easiest corner towards
        the hardest, per coordinate."""
        if self.floor == "none":
            return corners(info)[0]
        if self.floor == "gated":
            info = {**info, "meta_step": self.good_meta_steps}
        return ramp(info, self.push_until)

    def estimate_gradient(self) -> Any:
        """``dL/dω`` from the recorded pairs, shrunk towards ``prior_slope`` (one partial
        derivative per coordinate, in oriented units; a float for one coordinate)."""
        if not self.history:
            return self.prior_slope if self.prior_weight > 0 else 0.0
        omegas = np.stack([np.atleast_1d(x) for x, _ in self.history])
        losses = np.array([loss for _, loss in self.history], dtype=float)
        d_omega, d_loss = np.diff(omegas, axis=0), np.diff(losses)
        keep = np.linalg.norm(d_omega, axis=1) >= self.min_delta
        d_omega, d_loss = d_omega[keep], d_loss[keep]
        dim = omegas.shape[1]
        if dim == 1:
            numerator = float(d_loss @ d_omega[:, 0]) + self.prior_weight * self.prior_slope
            denominator = float(d_omega[:, 0] @ d_omega[:, 0]) + self.prior_weight
            return numerator / denominator if denominator > 0 else 0.0
        gram = d_omega.T @ d_omega + self.prior_weight * np.eye(dim)
        rhs = d_omega.T @ d_loss + self.prior_weight * self.prior_slope
        gradient, *_ = np.linalg.lstsq(gram, rhs, rcond=None)  # the minimum-norm one if singular
        return gradient

    def summary(self) -> dict[str, float]:
        """``teacher/own_decision_fraction`` (own decision, not the floor, set the base ω),
        ``teacher/up_fraction`` and ``teacher/down_fraction`` (steps the decision moved)."""
        steps = max(self.decisions["own"] + self.decisions["floor"], 1)
        return {
            "teacher/own_decision_fraction": self.decisions["own"] / steps,
            "teacher/up_fraction": self.decisions["up"] / steps,
            "teacher/down_fraction": self.decisions["down"] / steps,
        }


@register_teacher("adaptive-paper")
@dataclass(eq=False)
class PaperAdaptiveTeacher(AdaptiveTeacher):
    """The adaptive teacher with only what section IV-B states: no prior, no floor.

    Finite differences of the validation loss under uniform perturbation of ω, a
    gradient threshold, a sign step of 2 (Table I), no schedule. The same class as
    ``adaptive`` with other defaults (``floor="none"``, ``prior_weight=0``), so every
    kwarg of ``adaptive`` applies.

    It is not Algorithm 1 taken literally, in two ways, both kept by default:

    - it descends ``J = ½ (L - target_loss)²`` with ``target_loss = 0.55``, not ``L``:
      requirements 1 and 2 (harder tasks for a student that over-performs, easier ones
      for one that under-performs) need a level to compare with, which the paper does
      not name; descending ``L`` itself only ever seeks the easiest tasks;
    - it reads the loss divided by ``log n`` (chance), so that one target serves every n;
      the paper reads the meta validation loss.

    ``literal=True`` is line 9 as written, ``ω ← ω - step · sign(dL/dω)`` on the raw
    validation loss (``target_loss=0``, ``loss="raw"``). Since the raw loss rises with
    the number of classes, that rule walks to the easiest ω and stays near it (on the
    analytic student, ``tests/teachers/test_paper_teachers.py``).

    Args:
        literal: Algorithm 1's line 9 as written (sets ``target_loss=0``, ``loss="raw"``).
    """

    prior_slope: float = 0.0
    prior_weight: float = 0.0
    floor: str = "none"
    literal: bool = False

    def __post_init__(self) -> None:
        if self.literal:
            if self.target_loss not in (0.0, AdaptiveTeacher.target_loss):
                raise ValueError(
                    f"literal=True descends the loss itself (target_loss=0); drop "
                    f"target_loss={self.target_loss!r}, or drop literal."
                )
            self.target_loss, self.loss = 0.0, "raw"
        super().__post_init__()
