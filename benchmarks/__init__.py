"""The benchmark harness: teacher x env x seed runs, statistics over seeds, plots.

Run a benchmark from Python as the command line does::

    from metacurriculum.benchmarks import resolve, run_benchmark, report, plot_all

    config = resolve("reduced", out="runs/reduced")     # or resolve(None, envs=[...], ...)
    run_benchmark(config)
    print(report(config.out))
    plot_all(config.out)

See :mod:`~metacurriculum.benchmarks.plan` for the runs,
:mod:`~metacurriculum.benchmarks.episode` for one run's episode under every executor,
:mod:`~metacurriculum.benchmarks.run_folders` for their folders and when one is finished,
:mod:`~metacurriculum.benchmarks.filesystem` for the lock of an output folder and
filesystem faults,
:mod:`~metacurriculum.benchmarks.benchmark` for the config, progress and interrupts,
:mod:`~metacurriculum.benchmarks.executors` for where runs execute (in this process,
local worker processes, populations of students trained together:
:mod:`~metacurriculum.benchmarks.population_executor`, or Ray tasks:
:mod:`~metacurriculum.benchmarks.ray_executor`),
:mod:`~metacurriculum.benchmarks.stats` and :mod:`~metacurriculum.benchmarks.intervals`
for the statistics, :mod:`~metacurriculum.benchmarks.tables` for the results files,
:mod:`~metacurriculum.benchmarks.plots` for the figures,
:mod:`~metacurriculum.benchmarks.scores` for rliable's score format and
:mod:`~metacurriculum.benchmarks.presets` for the named experiments.
Experiments that measure the library itself (its speed, its learning speed...) live
apart, in :mod:`metacurriculum.benchmarks.experiments`.
"""

from metacurriculum.benchmarks.benchmark import BenchConfig, run_benchmark
from metacurriculum.benchmarks.episode import execute_run
from metacurriculum.benchmarks.plan import (
    BenchmarkError,
    ConfigMismatchError,
    RunSpec,
    expand,
)
from metacurriculum.benchmarks.plots import plot_all
from metacurriculum.benchmarks.presets import PRESETS, Preset, resolve
from metacurriculum.benchmarks.run_folders import DamagedRunError
from metacurriculum.benchmarks.stats import load_runs, summarize
from metacurriculum.benchmarks.tables import report
from metacurriculum.benchmarks.workers import Interrupted

__all__ = [
    "PRESETS",
    "BenchConfig",
    "BenchmarkError",
    "ConfigMismatchError",
    "DamagedRunError",
    "Interrupted",
    "Preset",
    "RunSpec",
    "execute_run",
    "expand",
    "load_runs",
    "plot_all",
    "report",
    "resolve",
    "run_benchmark",
    "summarize",
]
