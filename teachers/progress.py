"""Teachers that follow the student's progress on the hardest tasks: the env's own reward.

The env's default reward is the decrease of the normalised loss on its fixed target
tasks (``n = n_max``) over one step, ``info["target_loss_normalized"]`` before minus
after: the progress towards what the student is judged on. These teachers credit that
gain to the ω the step trained at (``info["omega"]``) and learn where it is largest.
None of them assumes that easy tasks come first: where training on the hardest tasks
gives the most progress, they learn to stay there; easier ω are chosen only while the
gain after them is larger.

============== ==================================================================
name           teacher
============== ==================================================================
alp            absolute learning progress over ω bins, sampled in proportion
               (Portelas et al. 2019, ALP; discrete bins instead of a GMM)
target-bandit  a non-stationary bandit over ω arms whose payoff is the target gain
mixture        ω drawn from an exponential tilt towards ``omega_max``; the tilt is
               learnt by a policy gradient on the target gain
============== ==================================================================

Measured on the real student (``benchmarks/experiments/measure_reduced.py``, the 'reduced'
preset: Omniglot 5-way, 200 meta-steps = 50 env steps, CPU, seed 0; test loss on 100
unseen 5-way tasks; ``none`` 0.636, ``linear`` 0.747)::

    python benchmarks/experiments/measure_reduced.py alp target-bandit mixture --seeds 0

============== ========= ======================================================
teacher        test loss what it did
============== ========= ======================================================
alp            0.710     mean ω 3.5 in the first half, 4.1 in the second; 36% of
                         the steps at ω = 5
target-bandit  0.670     36% at ω = 5; its last 21 steps at ω = 3: ε-greedy
                         locked in (an arm's value changes only when it is pulled)
mixture        0.686     tilt 2.0 -> 2.6, mean ω 4.1 throughout
============== ========= ======================================================

None beat ``none`` on that seed. 50 steps of a gain measured on 8 target tasks are
too few and too noisy for these learners to find, as on the fakes, that the hardest
tasks are best; they spend most of the budget exploring. Where the target loss does
not move (the analytic student far from ``n_max``) they behave like ``random``.

The bandits reuse the TSCL machinery (:class:`~metacurriculum.teachers.tscl.BanditTeacher`:
arms, crediting a measurement to the arm where ω is, exploration policies).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from metacurriculum.teachers.base import OmegaTeacher, register_teacher
from metacurriculum.teachers.tscl import UNTRIED, BanditTeacher, ExplorationPolicy

#: The signals a progress teacher can learn from.
SIGNALS = ("target", "val")


class TargetGain:
    """The decrease of the normalised target loss since the previous ``act``: the env's reward.

    Call it at every ``act`` with ``info``; it returns ``(ω trained at, gain)``, or
    ``None`` for the first call of an episode (nothing trained yet) and for a loss that
    is not finite (a diverged student).
    """

    def __init__(self) -> None:
        self.last: float | None = None

    def __call__(self, info: Mapping[str, Any]) -> tuple[float, float] | None:
        now = float(info["target_loss_normalized"])
        if not math.isfinite(now) or info.get("diverged", False):
            return None
        previous, self.last = self.last, now
        return None if previous is None else (float(info["omega"]), previous - now)


def _check_rate(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0.0 < value <= 1.0):
        raise ValueError(f"{name}={value!r} must lie in (0, 1].")


@register_teacher("alp")
@dataclass(eq=False)
class ALPTeacher(BanditTeacher):
    """Absolute learning progress (ALP) over ω bins, sampled in proportion to it.

    After Portelas et al. (2019), "Teacher algorithms for curriculum learning of Deep
    RL in continuously parameterized environments" (teachDeepRL ``alp_gmm.py``), with
    the ω range cut into bins (every integer by default) instead of a Gaussian mixture
    fitted over task space. Each bin keeps an exponential average of the learning
    progress measured after steps at it; its ALP is the absolute value, so progress
    that turns into forgetting attracts too. A bin is drawn with probability
    ``(1 - random_ratio) ALP_b / Σ ALP + random_ratio / bins`` (ALP-GMM's sampling,
    ``random_task_ratio = 0.2``); a bin without an estimate yet is worth 1, far above
    any measured ALP, so each is tried before ALP decides (ALP-GMM's bootstrap of
    uniform sampling).

    The learning progress, by ``signal``:

    - ``"target"`` (default): the env's reward, the decrease of the normalised loss on
      the hardest tasks over the step trained at the bin. Where training on the
      hardest tasks helps them most, the top bin has the largest ALP.
    - ``"val"``: ALP-GMM's own: the change of the bin's competence (its normalised
      validation loss) between two visits, per step in between.

    Args:
        arms: the ω of each bin; ``None`` for every integer of the ω range.
        signal: ``"target"`` or ``"val"`` (see above).
        alpha: weight of the newest progress in each bin's average.
        random_ratio: the share of uniform draws.
        policy: ``"proportional"`` (the sampling above, with ``random_ratio``), or any
            policy of :class:`~metacurriculum.teachers.tscl.BanditTeacher` (then
            ``random_ratio`` is unused).
        absolute: ALP's absolute value; ``False`` samples only bins that progress.
    """

    signal: str = "target"
    alpha: float = 0.3
    random_ratio: float = 0.2
    policy: str | Mapping[str, Any] | ExplorationPolicy = "proportional"
    absolute: bool = True

    def __post_init__(self) -> None:
        if self.signal not in SIGNALS:
            raise ValueError(f"signal={self.signal!r} is unknown; choose one of {SIGNALS}.")
        _check_rate("alpha", self.alpha)
        if self.policy == "proportional":
            self.policy = {"name": "proportional", "random_ratio": self.random_ratio}
        super().__post_init__()

    def init_arms(self, n: int) -> None:
        self.progress = np.zeros(n)
        self.estimated = np.zeros(n, dtype=bool)
        self._gain = TargetGain()
        self._last_val: list[tuple[int, float] | None] = [None] * n

    def outcome(self, info: Mapping[str, Any]) -> tuple[float, float] | None:
        if self.signal == "target":
            return self._gain(info)
        return super().outcome(info)

    def record(self, arm: int, t: int, score: float) -> None:
        if self.signal == "val":  # score is minus the bin's loss: progress per step between visits
            previous, self._last_val[arm] = self._last_val[arm], (t, score)
            if previous is None or t == previous[0]:
                return
            score = (score - previous[1]) / (t - previous[0])
        if self.estimated[arm]:
            self.progress[arm] += self.alpha * (score - self.progress[arm])
        else:
            self.progress[arm], self.estimated[arm] = score, True

    def values(self) -> np.ndarray:
        return np.where(self.estimated, self.progress, UNTRIED)


@register_teacher("target-bandit")
@dataclass(eq=False)
class TargetBanditTeacher(BanditTeacher):
    """A bandit over ω arms whose payoff is the target-loss decrease after a step at the arm.

    The env's reward as the payoff of a non-stationary multi-armed bandit (Sutton &
    Barto 2018, section 2.5: a constant step size tracks a drifting payoff), acted on
    ε-greedily as TSCL does. An arm's value is the exponential average of its
    payoffs; untried arms are worth 1, so each is tried once first. Unlike the TSCL
    teachers, whose payoff is the slope of each arm's own validation score (which
    rewards easy arms while the student learns them), every arm here is judged by what
    it does for the hardest tasks, and the sign counts: an arm whose steps leave the
    target loss higher is avoided.

    Args:
        alpha: the step size of the exponential average.
        policy: ``"epsilon-greedy"`` (ε = 0.1) or ``"boltzmann"``; see
            :class:`~metacurriculum.teachers.tscl.BanditTeacher`.
    """

    alpha: float = 0.3

    def __post_init__(self) -> None:
        _check_rate("alpha", self.alpha)
        super().__post_init__()

    def init_arms(self, n: int) -> None:
        self.q = np.zeros(n)
        self.estimated = np.zeros(n, dtype=bool)
        self._gain = TargetGain()

    def outcome(self, info: Mapping[str, Any]) -> tuple[float, float] | None:
        return self._gain(info)

    def record(self, arm: int, t: int, score: float) -> None:
        if self.estimated[arm]:
            self.q[arm] += self.alpha * (score - self.q[arm])
        else:
            self.q[arm], self.estimated[arm] = score, True

    def values(self) -> np.ndarray:
        return np.where(self.estimated, self.q, UNTRIED)


def tilted_mean(tilt: float) -> float:
    """The mean of ``x`` in ``[0, 1]`` with density proportional to ``exp(tilt · x)``."""
    if abs(tilt) < 1e-6:
        return 0.5 + tilt / 12.0
    return 1.0 / -math.expm1(-tilt) - 1.0 / tilt


def sample_tilted(tilt: float, rng: np.random.Generator) -> float:
    """A draw of ``x`` in ``[0, 1]`` with density proportional to ``exp(tilt · x)``."""
    if abs(tilt) < 1e-6:
        return float(rng.uniform())
    if tilt < 0:
        return 1.0 - sample_tilted(-tilt, rng)
    u = rng.uniform()
    # inverse CDF, written so that exp never overflows: 1 + log(u + (1 - u) e^-tilt) / tilt
    return float(np.clip(1.0 + math.log(u + (1.0 - u) * math.exp(-tilt)) / tilt, 0.0, 1.0))


@register_teacher("mixture")
@dataclass(eq=False)
class MixtureTeacher(OmegaTeacher):
    """ω drawn from a distribution tilted towards ``omega_max``; the tilt is learnt.

    Each step draws ``x`` in ``[0, 1]`` with density ``∝ exp(tilt · x)`` and trains at
    ``ω = omega_min + x (omega_max - omega_min)``: tilt 0 is domain randomisation,
    a large tilt is plain MAML on the hardest tasks, a negative one favours easy tasks.
    The tilt follows the policy gradient of the env's reward (REINFORCE with a
    baseline; Williams 1992): after a step at ``x`` with target gain ``g``,
    ``tilt ← tilt + lr · A · (x - E_tilt[x])``, where ``x - E[x]`` is the score
    function of the exponential family and ``A = (g - b) / s`` the gain's advantage,
    standardised by exponential averages of its mean ``b`` and spread ``s`` (so ``lr``
    does not depend on the scale of the losses). ``lr = 2`` and ``max_tilt = 20`` were
    chosen on the fakes of ``tests/teachers/test_progress_teachers.py`` (150 steps):
    with ``lr = 0.5`` or ``max_tilt = 10`` the top class got at most 75% of the draws
    where only it teaches. Where the
    hardest tasks give more progress than the draw's average the tilt grows until
    almost every draw is at the top; where easier tasks help more, it falls. The tilt
    stays within ``±max_tilt``.

    Starting tilted towards the top (``tilt=2``: mean ω at 69% of the range) follows
    the finding that drove these teachers: on the real student easy tasks early did not
    pay back, so the burden of proof is on the easy end.

    Args:
        tilt: the tilt at the start of an episode.
        lr: the policy-gradient step size, in units of standardised advantage.
        max_tilt: the bound on ``|tilt|`` (at 20, 92% of the draws lie in the top eighth
            of the range: the top class of a 5-way range).
        beta: weight of the newest gain in the baseline and spread averages.
    """

    tilt: float = 2.0
    lr: float = 2.0
    max_tilt: float = 20.0
    beta: float = 0.1

    def __post_init__(self) -> None:
        for name in ("tilt", "lr", "max_tilt"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"{name}={value!r} must be a finite number.")
        if self.lr < 0 or self.max_tilt <= 0:
            raise ValueError(f"lr={self.lr!r} must be >= 0 and max_tilt={self.max_tilt!r} > 0.")
        if abs(self.tilt) > self.max_tilt:
            raise ValueError(f"tilt={self.tilt!r} must lie within ±max_tilt={self.max_tilt!r}.")
        _check_rate("beta", self.beta)

    def on_reset(self) -> None:
        self.current_tilt = float(self.tilt)
        self._gain = TargetGain()
        self._mean_at_draw = 0.5
        self._baseline: float | None = None
        self._spread = 0.0
        self.draws: list[float] = []

    def choose_omega(self, observation: np.ndarray, info: Mapping[str, Any]) -> float:
        low, high = float(info["omega_min"]), float(info["omega_max"])
        gain = self._gain(info)
        if gain is not None and high > low:
            self.learn((gain[0] - low) / (high - low), gain[1])
        self._mean_at_draw = tilted_mean(self.current_tilt)
        x = sample_tilted(self.current_tilt, self.rng)
        self.draws.append(x)
        return low + x * (high - low)

    def learn(self, x: float, gain: float) -> None:
        """One policy-gradient step on the tilt for a gain ``gain`` after training at ``x``."""
        if self._baseline is None:
            self._baseline = gain
            return
        deviation = gain - self._baseline
        self._baseline += self.beta * deviation
        self._spread += self.beta * (deviation**2 - self._spread)
        if self._spread <= 0:
            return
        advantage = deviation / math.sqrt(self._spread)
        step = self.lr * advantage * (x - self._mean_at_draw)
        self.current_tilt = float(np.clip(self.current_tilt + step, -self.max_tilt, self.max_tilt))

    def summary(self) -> dict[str, float]:
        """``teacher/final_tilt`` and ``teacher/mean_draw`` (mean ``x``, 1 is ``omega_max``)."""
        if not getattr(self, "draws", None):
            return {}
        return {
            "teacher/final_tilt": self.current_tilt,
            "teacher/mean_draw": float(np.mean(self.draws)),
        }
