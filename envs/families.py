"""Task families: what ω is. A family names its parameters, their bounds and hardest ends,
and turns an ω (a vector) into a meta-batch.

The paper's ω is the vector of parameters of the task distribution; its experiments use
one, the number of classes (the ``classes`` family, the default of every id). A family
with more parameters makes a multi-dimensional curriculum: the env derives its action
space (``Box(-1, 1, (d,))``), the ω part of its observation and ``info["omega"]`` from
the family, and the teachers that handle vectors steer every coordinate.

This module does not import torch: the env reads a family's bounds without it, and
only :meth:`TaskFamily.transform` (called by the MAML student) touches tensors.

Registering a family (its parameters, and what they do to a task's images)::

    import dataclasses
    from metacurriculum.envs import Parameter, TaskFamily, classes_parameter, register_family

    class Dimmed(TaskFamily):  # ω = (classes, dim): a task's ink is scaled by 1 - dim
        def __init__(self, config):
            super().__init__([classes_parameter(config), Parameter("dim", 0.0, 0.9, unit=0.1)])

        def transform(self, batch, params, generator):  # params: [tasks, d]
            scale = (1.0 - batch.support_x.new_tensor(params[:, 1])).view(-1, 1, 1, 1, 1)
            return dataclasses.replace(
                batch, support_x=batch.support_x * scale, query_x=batch.query_x * scale
            )

    register_family("dimmed", Dimmed)
    env = gym.make("MetaCurriculum-Omniglot5-v0", family="dimmed")
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from metacurriculum.registry import PLUGIN_GROUPS, Registry

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from metacurriculum.envs.config import MetaCurriculumConfig
    from metacurriculum.student.batch import MetaBatch

#: Which end of a parameter's range is hardest.
HARDEST_ENDS = ("high", "low")


@dataclass(frozen=True)
class Parameter:
    """One coordinate of ω.

    Args:
        name: its name (``info["omega/<name>"]``, plots, teachers' summaries).
        low: the smallest value ω may take.
        high: the largest value; ``low < high``.
        hardest: ``"high"`` or ``"low"``: the end where tasks are hardest. The hardest
            corner of the box is the target distribution (reward, final evaluation).
        unit: the parameter's natural step: one env ``omega_step`` for discrete actions,
            the scale of the per-task perturbation (``omega_noise`` units), and the unit
            in which teachers' steps are given (one class for ``classes``).
        integer: the values a task gets are rounded (the number of classes).
        task_low: the smallest value a task may get after the per-task perturbation
            (``None``: ``low``); for ``classes``, ``floor(omega_min)``.

    Raises:
        ValueError: when a bound is not finite, ``low >= high``, ``unit <= 0`` or
            ``hardest`` is not ``"high"`` or ``"low"``.
    """

    name: str
    low: float
    high: float
    hardest: str = "high"
    unit: float = 1.0
    integer: bool = False
    task_low: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ValueError(
                f"parameter name {self.name!r} must be a non-empty string without '/'."
            )
        for bound in ("low", "high", "unit"):
            value = getattr(self, bound)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{self.name}: {bound}={value!r} must be a number.")
            if not math.isfinite(value):
                raise ValueError(f"{self.name}: {bound}={value!r} must be finite.")
        if not self.low < self.high:
            raise ValueError(
                f"{self.name}: low={self.low!r} must be below high={self.high!r}; a parameter "
                "with one value is a constant of the family, not a coordinate of ω."
            )
        if self.unit <= 0:
            raise ValueError(f"{self.name}: unit={self.unit!r} must be > 0.")
        if self.hardest not in HARDEST_ENDS:
            raise ValueError(
                f"{self.name}: hardest={self.hardest!r} must be one of {HARDEST_ENDS}."
            )
        if self.task_low is not None and not self.task_low <= self.low:
            raise ValueError(f"{self.name}: task_low={self.task_low!r} must be <= low.")

    @property
    def hardest_value(self) -> float:
        """The value at the hardest end."""
        return float(self.high if self.hardest == "high" else self.low)

    @property
    def easiest_value(self) -> float:
        """The value at the easiest end."""
        return float(self.low if self.hardest == "high" else self.high)

    def perturb(self, value: float, offsets: np.ndarray, noise: float) -> np.ndarray:
        """Per-task values: ``value + offsets * noise * unit``, rounded for an integer
        parameter, clipped to ``[task_low, high]``; ``offsets`` are uniform in ``[-1, 1]``.

        This is the paper's perturbation of ω per task (``T_i ~ p(T) + noise``); with
        ``noise = 0.5`` an integer parameter at an integer value keeps it, and at a
        fractional one mixes its two neighbours in proportion.
        """
        low = self.low if self.task_low is None else self.task_low
        return perturb(value, offsets, noise, self.unit, self.integer, low, self.high)


def perturb(
    value: float,
    offsets: np.ndarray,
    noise: float,
    unit: float,
    integer: bool,
    low: float,
    high: float,
) -> np.ndarray:
    """``clip(value + offsets * noise * unit, low, high)``, rounded first when ``integer``:
    the paper's perturbation of ω per task, for every family and student."""
    values = value + np.asarray(offsets, dtype=np.float64) * (noise * unit)
    if integer:
        values = np.round(values)
    return np.clip(values, low, high)


def classes_parameter(config: MetaCurriculumConfig) -> Parameter:
    """The number of classes of a task: ``[omega_min, n_max]``, hardest at ``n_max``, integer
    per task (a task may have ``floor(omega_min)`` classes)."""
    return Parameter(
        "classes",
        float(config.omega_min),
        float(config.n_max),
        hardest="high",
        unit=1.0,
        integer=True,
        task_low=float(config.n_min),
    )


class TaskFamily:
    """The parameters of a task distribution (ω's coordinates) and how they shape a task.

    A subclass passes its :class:`Parameter` s to ``__init__`` and, when a parameter
    changes the images, overrides :meth:`transform`. The number of classes of a task
    is its ``classes`` coordinate when the family has one, otherwise ``n_max``.

    Args:
        parameters: the coordinates of ω, in order; names must be unique.
        n_max: the classes of every task of a family without a ``classes`` parameter.

    Raises:
        ValueError: for no parameters or repeated names.
    """

    def __init__(self, parameters: Sequence[Parameter], n_max: int | None = None) -> None:
        parameters = tuple(parameters)
        if not parameters or not all(isinstance(p, Parameter) for p in parameters):
            raise ValueError("a task family needs at least one Parameter.")
        names = [p.name for p in parameters]
        if len(set(names)) != len(names):
            raise ValueError(f"parameter names must be unique, got {names}.")
        if "classes" not in names and n_max is None:
            raise ValueError("a family without a 'classes' parameter must give n_max.")
        self.parameters = parameters
        self.fixed_n_way = n_max

    # -- the box -------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """The number of coordinates of ω."""
        return len(self.parameters)

    @property
    def names(self) -> tuple[str, ...]:
        """The coordinates' names, in order."""
        return tuple(p.name for p in self.parameters)

    @property
    def low(self) -> np.ndarray:
        """``[d]`` lower bounds."""
        return np.array([p.low for p in self.parameters], dtype=np.float64)

    @property
    def high(self) -> np.ndarray:
        """``[d]`` upper bounds."""
        return np.array([p.high for p in self.parameters], dtype=np.float64)

    @property
    def unit(self) -> np.ndarray:
        """``[d]`` natural steps (see :class:`Parameter`)."""
        return np.array([p.unit for p in self.parameters], dtype=np.float64)

    @property
    def hardest_high(self) -> np.ndarray:
        """``[d]`` bool: True where the high end is the hardest."""
        return np.array([p.hardest == "high" for p in self.parameters])

    @property
    def hardest(self) -> np.ndarray:
        """``[d]`` the hardest corner: the target distribution."""
        return np.array([p.hardest_value for p in self.parameters], dtype=np.float64)

    @property
    def easiest(self) -> np.ndarray:
        """``[d]`` the easiest corner."""
        return np.array([p.easiest_value for p in self.parameters], dtype=np.float64)

    def check(self, omega: Any) -> np.ndarray:
        """``omega`` as a float64 ``[d]`` array (a number is accepted when ``d = 1``).

        Raises:
            ValueError: for the wrong length, or values that are not finite numbers.
        """
        if isinstance(omega, (bool, np.bool_, str, bytes)):
            raise ValueError(f"ω must be numbers, got {omega!r}.")
        try:
            array = np.asarray(omega, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"ω must be numbers, got {omega!r}.") from None
        if array.size != self.dim:
            raise ValueError(
                f"ω has {array.size} value(s) {array.tolist()}, but the family has "
                f"{self.dim} parameter(s) {list(self.names)}; give one value per parameter."
            )
        if not np.all(np.isfinite(array)):
            raise ValueError(f"ω={array.tolist()} must be finite.")
        return array

    def clip(self, omega: Any) -> np.ndarray:
        """``omega`` checked and clipped to the box."""
        return np.clip(self.check(omega), self.low, self.high)

    def normalize(self, omega: Any) -> np.ndarray:
        """``(ω - low) / (high - low)``: each coordinate in ``[0, 1]`` inside the box."""
        return (self.check(omega) - self.low) / (self.high - self.low)

    def difficulty(self, omega: Any) -> np.ndarray:
        """Each coordinate's position from its easiest end (0) to its hardest (1)."""
        x = self.normalize(omega)
        return np.where(self.hardest_high, x, 1.0 - x)

    def from_difficulty(self, difficulty: Any) -> np.ndarray:
        """The ω whose :meth:`difficulty` is ``difficulty`` (the inverse)."""
        x = np.asarray(difficulty, dtype=np.float64)
        x = np.where(self.hardest_high, x, 1.0 - x)
        return self.low + x * (self.high - self.low)

    def public(self, omega: np.ndarray) -> float | np.ndarray:
        """ω as the env reports it: a float for a one-parameter family, else a ``[d]`` array."""
        return float(omega[0]) if self.dim == 1 else np.array(omega, dtype=np.float64)

    # -- tasks ---------------------------------------------------------------------

    def task_parameters(self, omega: Any, offsets: np.ndarray, noise: float) -> np.ndarray:
        """``[T, d]`` per-task values of the coordinates at ``omega``: the one place where ω
        is perturbed per task (see :meth:`Parameter.perturb`).

        Args:
            omega: ``[d]`` ω.
            offsets: ``[T, d]`` (or ``[T]`` when ``d = 1``) uniform draws in ``[-1, 1]``.
            noise: the env's ``omega_noise``, in units of each parameter's ``unit``.
        """
        omega = self.check(omega)
        offsets = np.asarray(offsets, dtype=np.float64).reshape(-1, self.dim)
        columns = [p.perturb(omega[j], offsets[:, j], noise) for j, p in enumerate(self.parameters)]
        return np.stack(columns, axis=1)

    def n_way(self, params: np.ndarray) -> np.ndarray:
        """``[T]`` the number of classes of each task with coordinates ``params``."""
        params = np.asarray(params).reshape(-1, self.dim)
        if "classes" in self.names:
            return params[:, self.names.index("classes")].astype(np.int64)
        return np.full(len(params), int(self.fixed_n_way), dtype=np.int64)

    def transform(
        self, batch: MetaBatch, params: np.ndarray, generator: torch.Generator
    ) -> MetaBatch:
        """The meta-batch with each task's images changed by its ``params`` row (``[T, d]``).

        Called after the classes and images of the tasks are drawn; draws any randomness
        from ``generator`` (on the batch's device). The default changes nothing: the
        ``classes`` parameter acts through :meth:`n_way`.
        """
        return batch

    def describe(self) -> list[dict[str, Any]]:
        """The parameters as dicts (for ``metacurriculum envs`` and ``config.json``)."""
        return [
            {"name": p.name, "low": p.low, "high": p.high, "hardest": p.hardest, "unit": p.unit}
            for p in self.parameters
        ]

    def __repr__(self) -> str:
        inside = ", ".join(f"{p.name}∈[{p.low:g}, {p.high:g}]" for p in self.parameters)
        return f"{type(self).__name__}({inside})"


class ClassesFamily(TaskFamily):
    """ω = the number of classes of a task, in ``[omega_min, n_max]`` (the paper's)."""

    def __init__(self, config: MetaCurriculumConfig) -> None:
        super().__init__([classes_parameter(config)])


class OmniglotMultiFamily(TaskFamily):
    """ω = (classes, rotation, noise): three ways to make a few-shot task harder.

    - ``classes``: the number of classes, ``[omega_min, n_max]`` (as ``classes``).
    - ``rotation``: every image of a task is rotated by its own angle, uniform in
      ``[-rotation, rotation]`` degrees, ``[0, max_rotation]``: a support image and the
      queries of its class no longer share an orientation.
    - ``noise``: Gaussian pixel noise of standard deviation ``noise`` added to every image
      (pixels are in ``[0, 1]``, ink 1), ``[0, max_noise]``.

    The hardest corner (``n_max`` classes, ``max_rotation``, ``max_noise``) is the target
    distribution. ``benchmarks/experiments/family_difficulty.py`` measures what each parameter does
    to the student's loss.

    Args:
        config: the env's settings (``omega_min``, ``n_max``).
        max_rotation: the widest rotation range, in degrees.
        max_noise: the largest noise standard deviation.
    """

    def __init__(
        self, config: MetaCurriculumConfig, max_rotation: float = 60.0, max_noise: float = 0.5
    ) -> None:
        super().__init__(
            [
                classes_parameter(config),
                Parameter("rotation", 0.0, float(max_rotation), unit=max_rotation / 8),
                Parameter("noise", 0.0, float(max_noise), unit=max_noise / 8),
            ]
        )

    def transform(
        self, batch: MetaBatch, params: np.ndarray, generator: torch.Generator
    ) -> MetaBatch:
        import torch

        from metacurriculum.student.batch import MetaBatch

        device = batch.support_x.device
        rotation = torch.as_tensor(params[:, 1], dtype=batch.support_x.dtype, device=device)
        noise = torch.as_tensor(params[:, 2], dtype=batch.support_x.dtype, device=device)

        def change(x: torch.Tensor) -> torch.Tensor:  # [T, P, C, H, W]
            tasks, per_task = x.shape[:2]
            u = torch.rand(tasks, per_task, generator=generator, device=device, dtype=x.dtype)
            angle = torch.deg2rad((2.0 * u - 1.0) * rotation.view(-1, 1)).flatten()
            cos, sin = torch.cos(angle), torch.sin(angle)
            zero = torch.zeros_like(cos)
            theta = torch.stack([cos, -sin, zero, sin, cos, zero], dim=1).view(-1, 2, 3)
            flat = x.flatten(0, 1)
            grid = torch.nn.functional.affine_grid(theta, list(flat.shape), align_corners=False)
            turned = torch.nn.functional.grid_sample(flat, grid, align_corners=False)
            eps = torch.randn(flat.shape, generator=generator, device=device, dtype=x.dtype)
            sigma = noise.view(-1, 1).expand(tasks, per_task).flatten().view(-1, 1, 1, 1)
            return (turned + sigma * eps).view_as(x)

        return MetaBatch(
            change(batch.support_x),
            batch.support_y,
            batch.support_mask,
            change(batch.query_x),
            batch.query_y,
            batch.query_mask,
            batch.n_way,
        )


#: Family factories by name: ``factory(config) -> TaskFamily``. Add with :func:`register_family`.
FAMILIES: Registry[Callable[[MetaCurriculumConfig], TaskFamily]] = Registry(
    "family",
    hint="add yours with register_family(name, factory), or an entry point in the group "
    f"{PLUGIN_GROUPS['family']!r} of an installed package",
    setting="family=",
    plural="families",
    group=PLUGIN_GROUPS["family"],
)
FAMILIES.register("classes", ClassesFamily)
FAMILIES.register("omniglot-multi", OmniglotMultiFamily)


def register_family(
    name: str, factory: Callable[[MetaCurriculumConfig], TaskFamily] | None = None
) -> Any:
    """Register ``factory(config) -> TaskFamily`` under ``name`` (the env setting ``family``).

    Usable directly or as a class decorator. Registering the same factory twice is harmless.

    Raises:
        ValueError: when ``name`` is empty or already belongs to a different factory.
    """
    return FAMILIES.register(name, factory)


def list_families() -> list[str]:
    """The registered family names, sorted."""
    return FAMILIES.names()


def check_family_name(name: str) -> None:
    """Raise ``ValueError`` listing the families when ``name`` is not registered."""
    FAMILIES.check(name)


def make_family(config: MetaCurriculumConfig) -> TaskFamily:
    """The family named by ``config.family``, built for ``config``.

    Raises:
        ValueError: for an unknown name (the message lists the families), or a factory
            that returns something other than a :class:`TaskFamily`.
    """
    family = FAMILIES.lookup(config.family)(config)
    if not isinstance(family, TaskFamily):
        raise TypeError(
            f"family factory {FAMILIES[config.family]!r} returned {family!r}; it must return "
            "a TaskFamily."
        )
    return family
