"""The ``metacurriculum`` command: benchmark teachers, aggregate and plot runs, list what exists.

Subcommands (``metacurriculum SUBCOMMAND --help`` for each)::

    metacurriculum bench --env MetaCurriculum-Omniglot20-v0 \\
        --teachers adaptive,static,none,random,tscl-window --seeds 5
    metacurriculum bench --preset reduced --out runs/reduced
    metacurriculum table runs/          # alias: report
    metacurriculum plot runs/
    metacurriculum envs | teachers | presets | families

The work happens in :mod:`metacurriculum.benchmarks`; this module only parses.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym

import metacurriculum
from metacurriculum.registry import parse_value

DESCRIPTION = (
    "Benchmark curriculum teachers of a MAML student: run teachers x envs x seeds, "
    "aggregate and plot the runs, list envs, teachers, presets and task families."
)


# -- option values -------------------------------------------------------------------


def _split(text: str) -> list[str]:
    """Split at commas outside brackets and quotes: ``a=1,b=[1,2]`` -> ``['a=1', 'b=[1,2]']``."""
    parts, depth, quote, current = [], 0, "", ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[({":
            depth += 1
        elif char in "])}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += char
    return [p.strip() for p in [*parts, current] if p.strip()]


def parse_kwargs(text: str) -> dict[str, Any]:
    """``"budget=200,device=cpu"`` -> ``{"budget": 200, "device": "cpu"}``."""
    out = {}
    for item in _split(text):
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise argparse.ArgumentTypeError(
                f"{item!r} is not KEY=VALUE; write e.g. budget=200,device=cpu."
            )
        out[key.strip()] = parse_value(value.strip())
    return out


def parse_teacher_kwargs(text: str) -> dict[str, dict[str, Any]]:
    """``"adaptive:step=1,window=4,static:threshold=0.3"`` -> kwargs per teacher.

    An item without ``TEACHER:`` belongs to the teacher named last.
    """
    out: dict[str, dict[str, Any]] = {}
    teacher = None
    for item in _split(text):
        head, colon, rest = item.partition(":")
        if colon and "=" not in head:
            teacher, item = head.strip(), rest
        if teacher is None:
            raise argparse.ArgumentTypeError(
                f"{item!r} names no teacher; write TEACHER:KEY=VALUE, e.g. adaptive:step=1."
            )
        out.setdefault(teacher, {}).update(parse_kwargs(item))
    return out


#: The most seeds one option may name: more is a typo, not a benchmark.
MAX_SEEDS = 10_000


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"5"`` -> seeds 0..4; ``"0,3,7"`` -> those; ``"10-14"`` -> 10..14 (inclusive).

    Seeds are integers >= 0, at most :data:`MAX_SEEDS` of them.
    """
    usage = "write a count (5 = seeds 0..4), a list (0,3,7) or a range (10-14)"
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        elif "-" in text.strip()[1:]:
            low, high = (int(s) for s in text.split("-", 1))
            if low > high:
                raise argparse.ArgumentTypeError(
                    f"seeds {text!r}: the range is empty; write LOW-HIGH with LOW <= HIGH, "
                    f"e.g. {high}-{low}."
                )
            seeds = range(low, high + 1)
        else:
            count = int(text)
            if count < 1:
                raise argparse.ArgumentTypeError(f"seeds {text!r}: the count must be >= 1.")
            seeds = range(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds {text!r}: {usage}.") from None
    count = seeds.stop - seeds.start if isinstance(seeds, range) else len(seeds)  # no overflow
    if count == 0:
        raise argparse.ArgumentTypeError(f"seeds {text!r} names no seed; {usage}.")
    if count > MAX_SEEDS:
        raise argparse.ArgumentTypeError(
            f"seeds {text!r} names {count} seeds, more than {MAX_SEEDS}; {usage}."
        )
    if min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"seeds {text!r}: seeds must be >= 0.")
    return tuple(seeds)


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


# -- listings ------------------------------------------------------------------------


def env_ids() -> list[str]:
    """Registered MetaCurriculum env ids."""
    return sorted(env_id for env_id in gym.registry if "MetaCurriculum" in env_id)


def _summary_line(obj: Any) -> str:
    """The first line of ``obj``'s docstring, without reST roles and literals."""
    doc = (obj.__doc__ or "").strip().splitlines()
    return re.sub(r":\w+:`([^`]*)`", r"\1", doc[0]).replace("``", "") if doc else ""


def teacher_lines() -> list[str]:
    """``name  first docstring line`` for each registered teacher."""
    from metacurriculum.teachers import TEACHERS

    return [f"  {name:14} {_summary_line(TEACHERS[name])}" for name in sorted(TEACHERS)]


def parameter_text(parameter: dict[str, Any]) -> str:
    """``"rotation [0, 60], hardest high"``: one of ``TaskFamily.describe()``'s parameters."""
    low, high = parameter["low"], parameter["high"]
    return f"{parameter['name']} [{low:g}, {high:g}], hardest {parameter['hardest']}"


def env_family(env_id: str) -> tuple[str, list[dict[str, Any]]]:
    """The task family of a registered id, with its registered settings: its name and
    parameters (``TaskFamily.describe()``)."""
    from metacurriculum.envs import MetaCurriculumConfig, make_family

    config = MetaCurriculumConfig.from_overrides(**gym.spec(env_id).kwargs)
    return config.family, make_family(config).describe()


def _epilog() -> str:
    from metacurriculum.benchmarks.presets import PRESETS

    presets = [f"  {name:17} {preset.description}" for name, preset in PRESETS.items()]
    envs = [f"  {env_id}" for env_id in env_ids()]
    return "\n".join(
        ["teachers:", *teacher_lines(), "", "env ids:", *envs, "", "presets:", *presets]
    )


def _cmd_envs(args: argparse.Namespace) -> int:
    for env_id in env_ids():
        spec = gym.spec(env_id)
        settings = ", ".join(f"{k}={v}" for k, v in spec.kwargs.items())
        print(f"{env_id}\n    {settings}; {spec.max_episode_steps} env steps per episode")
        try:
            family, parameters = env_family(env_id)
        except (TypeError, ValueError) as error:  # an id of another module, other settings
            print(f"    family: unknown ({error})")
            continue
        print(f"    family {family}: ω = " + "; ".join(map(parameter_text, parameters)))
    return 0


def _cmd_families(args: argparse.Namespace) -> int:
    from metacurriculum.envs import FAMILIES, MetaCurriculumConfig, list_families, make_family

    for name in list_families():
        print(f"{name}: {_summary_line(FAMILIES[name])}")
        for parameter in make_family(MetaCurriculumConfig(family=name)).describe():
            print(f"    {parameter_text(parameter)}")
    print("(bounds with the default settings; an env's own are in `metacurriculum envs`)")
    return 0


def _cmd_teachers(args: argparse.Namespace) -> int:
    print("\n".join(line[2:] for line in teacher_lines()))
    return 0


def learner_lines() -> list[str]:
    """Each learner, its summary and its settings (name, default, help), for the CLI."""
    from metacurriculum.student.settings import LEARNERS

    lines = []
    for name in LEARNERS.names():
        spec = LEARNERS.lookup(name)
        lines.append(f"{name}: {spec.summary}")
        described = spec.settings.describe()
        for setting, default, text in described:
            lines.append(f"    {setting}={default!r}: {text}")
        if not described:
            lines.append("    (no settings)")
    return lines


def _cmd_learners(args: argparse.Namespace) -> int:
    print("\n".join(learner_lines()))
    print(
        "Pick one with --env-kwargs learner=NAME (gym.make(id, learner=NAME)); its settings "
        "by name too (--env-kwargs learner=anil,inner_steps=3)."
    )
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    from metacurriculum.benchmarks.presets import PRESETS

    for name, preset in PRESETS.items():
        print(f"{name}: {preset.description}")
        print(f"    envs {', '.join(preset.envs)}; teachers {', '.join(preset.teachers)}")
        print(f"    seeds {list(preset.seeds)}; eval tasks {preset.eval_tasks}")
        print(f"    env kwargs {dict(preset.env_kwargs)}")
        print(f"    teacher kwargs {dict(preset.teacher_kwargs)}")
    return 0


# -- benchmark, table, plots ---------------------------------------------------------


def _cmd_bench(args: argparse.Namespace) -> int:
    from metacurriculum.benchmarks import benchmark, presets

    teacher_kwargs: dict[str, dict[str, Any]] = {}
    for given in args.teacher_kwargs or []:
        for teacher, kwargs in given.items():
            teacher_kwargs.setdefault(teacher, {}).update(kwargs)
    config = presets.resolve(
        args.preset,
        envs=[i for text in args.env for i in _names(text)] if args.env else None,
        teachers=_split(args.teachers) if args.teachers else None,
        seeds=args.seeds,
        env_kwargs=_env_kwargs(args) or None,
        teacher_kwargs=teacher_kwargs or None,
        eval_tasks=args.eval_tasks,
        eval_seed=args.eval_seed,
        device=args.device,
        out=args.out,
        workers=args.workers,
        threads=args.threads,
        executor=args.executor,
        population=args.population,
        ray_address=args.ray_address,
        gpus_per_run=args.gpus_per_run,
        overwrite=args.overwrite or None,
        plots=False if args.no_plots else None,
        imports=args.imports,
        tracking=_tracking(args),
    )

    def results() -> None:  # with the output folder still locked: no other command's rewrite
        _report(config.out, elsewhere="--out")
        if config.plots:
            _plots(config.out, elsewhere="--no-plots, or --out")

    benchmark.run_benchmark(config, then=results)
    return 0


def _tracking(args: argparse.Namespace) -> Any:
    """The ``Tracking`` of --tensorboard, --wandb and --wandb-mode (``None``: none given)."""
    if not (args.tensorboard or args.wandb or args.wandb_mode):
        return None
    from metacurriculum.benchmarks.tracking import Tracking

    if args.wandb_mode and not args.wandb:
        from metacurriculum.benchmarks.plan import BenchmarkError

        raise BenchmarkError("--wandb-mode needs --wandb PROJECT (the project to log to).")
    return Tracking(tensorboard=args.tensorboard, wandb=args.wandb, wandb_mode=args.wandb_mode)


def _env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """--env-kwargs merged, with --data-root and --download folded in."""
    kwargs = {k: v for given in args.env_kwargs or [] for k, v in given.items()}
    if args.data_root is not None:
        kwargs["data_root"] = args.data_root
    if args.download:
        kwargs["download"] = True
    return kwargs


def _cmd_train_teacher(args: argparse.Namespace) -> int:
    from metacurriculum.benchmarks.plan import check_env_id
    from metacurriculum.teachers.sb3 import SB3_ALGOS, train_sb3_teacher

    check_env_id(args.env)
    out = args.out or f"teacher_{args.algo}.zip"
    _check_model_path(out)  # before training, not after it
    env_kwargs = _env_kwargs(args)
    if args.device is not None:
        env_kwargs["device"] = args.device
    model = train_sb3_teacher(
        args.algo,
        args.env,
        args.timesteps,
        seed=args.seed,
        path=out,
        progress=not args.no_progress,
        n_envs=args.n_envs,
        env_kwargs=env_kwargs,
        eval_freq=args.eval_freq,
        eval_episodes=args.eval_episodes,
        checkpoint_freq=args.checkpoint_freq,
        tensorboard_log=args.tensorboard_log,
        verbose=args.verbose,
        **{k: v for given in args.algo_kwargs or [] for k, v in given.items()},
    )
    curve = getattr(model, "teacher_eval_curve", [])
    if curve:
        baselines = ", ".join(f"{n} {v:.3f}" for n, v in model.teacher_eval_baselines.items())
        points = ", ".join(f"{steps}: {loss:.3f}" for steps, loss in curve)
        print(f"evaluation (env steps: final loss): {points}; baselines: {baselines}")
    teacher_kwargs = f"sb3:path={out},algo={args.algo}"
    print(f"saved {out}; benchmark it with --teachers sb3 --teacher-kwargs {teacher_kwargs}")
    # The policy acts in the spaces it was trained on: the bench needs the same settings.
    settings = {**SB3_ALGOS[args.algo].env_kwargs, **env_kwargs}
    if settings:
        pairs = ",".join(f"{k}={v}" for k, v in settings.items())
        print(f"(and the same env settings: --env-kwargs {pairs})")
    return 0


def _check_model_path(path: str) -> None:
    """Fail before training when the model could not be saved at ``path``."""
    from metacurriculum.benchmarks.filesystem import describe_os_error
    from metacurriculum.benchmarks.plan import BenchmarkError

    target = Path(path)
    if target.is_dir():
        raise BenchmarkError(
            f"--out {path} is a folder; name the .zip to write, e.g. {path}/ppo.zip."
        )
    probe = target.with_name(f".{target.name}.write-test")
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        error.filename = str(target)  # the probe's name would only confuse
        raise BenchmarkError(describe_os_error(error, elsewhere="--out")) from None


def _results_written(elsewhere: str) -> Any:
    """Turn a failed write of the results into one line naming the path and the fix."""
    from metacurriculum.benchmarks.filesystem import describe_os_error
    from metacurriculum.benchmarks.plan import BenchmarkError

    @contextlib.contextmanager
    def block() -> Any:
        try:
            yield
        except OSError as error:
            if isinstance(error, FileNotFoundError) and error.filename is None:
                raise  # load_runs: no finished run, its own message
            raise BenchmarkError(describe_os_error(error, elsewhere=elsewhere)) from None

    return block()


def _report(root: str, elsewhere: str = "") -> None:
    from metacurriculum.benchmarks.tables import report

    with _results_written(elsewhere):
        print(report(root))
    files = ", ".join(
        os.path.join(root, name) for name in ("results.md", "results.csv", "runs.csv")
    )
    print(f"results: {files}")


def _plots(root: str, out: str | None = None, elsewhere: str = "--out") -> None:
    from metacurriculum.benchmarks.plots import plot_all

    with _results_written(elsewhere):
        for path in plot_all(root, out):
            print(f"plot: {path}")


def _runs_dir(args: argparse.Namespace) -> str:
    if not args.runs_dir:
        from metacurriculum.benchmarks.plan import BenchmarkError

        raise BenchmarkError("RUNS_DIR is empty; pass a bench --out folder (. for this one).")
    return args.runs_dir


def _cmd_table(args: argparse.Namespace) -> int:
    _report(_runs_dir(args))
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    _plots(_runs_dir(args), args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``metacurriculum`` command."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="metacurriculum",
        description=DESCRIPTION,
        epilog=_epilog(),
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=metacurriculum.__version__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bench = sub.add_parser(
        "bench",
        help="run teachers x envs x seeds, then aggregate and plot",
        description="Run every teacher on every env from every seed; each run gets its own "
        "folder OUT/<env_id>/<teacher>/seed_<s>/. Finished runs are kept, interrupted or "
        "damaged ones redone: rerun the same command to finish. Ctrl-C or SIGTERM stops "
        "every worker within seconds (exit status 130 or 143). Options override the "
        "preset's fields.",
        epilog=_epilog(),
        formatter_class=formatter,
    )
    add = bench.add_argument
    add("--preset", help="a named experiment (see below); other options override its fields")
    add("--env", action="append", metavar="ID", help="env id(s), repeatable or comma-separated")
    add(
        "--teachers",
        help="comma-separated teacher names (default: adaptive,static,none,random,tscl-window); "
        "a variant NAME@KEY=VALUE[@KEY=VALUE...] is the teacher with settings of its own, with "
        "its own folders and rows: adaptive@step=1,adaptive@step=4 sweeps a setting",
    )
    add(
        "--seeds",
        type=parse_seeds,
        help="a count N (seeds 0..N-1), a list 0,3,7 or a range 10-14 (default 5)",
    )
    add(
        "--env-kwargs",
        type=parse_kwargs,
        action="append",
        metavar="K=V,...",
        help="env settings for every env, e.g. budget=200,hidden=32,device=cpu",
    )
    add(
        "--teacher-kwargs",
        type=parse_teacher_kwargs,
        action="append",
        metavar="T:K=V,...",
        help="teacher settings, e.g. adaptive:step=1,static:threshold=0.3. "
        "sb3:path=FILE.zip loads a Stable-Baselines3 model, which runs code stored in the "
        "file (as SB3 warns): only name files you trust",
    )
    add("--out", help="output root (default runs)")
    add(
        "--workers",
        type=int,
        help="parallel processes; 1 runs in this process (default: one per core)",
    )
    add("--threads", type=int, help="torch threads per run (default: cores // workers, >= 1)")
    add(
        "--executor",
        metavar="NAME",
        help="how runs are executed: processes (local processes, as --workers says; the "
        "default on the CPU), population (an env's runs as one population of students; the "
        "default on CUDA), inline (in this process) or ray (Ray tasks, on one machine or a "
        "cluster)",
    )
    add(
        "--population",
        type=int,
        metavar="N",
        help="with --executor population: at most N runs per population (default: every "
        "pending run of an env)",
    )
    add(
        "--ray-address",
        metavar="ADDRESS",
        help="with --executor ray: the cluster to use, e.g. auto on a node of a cluster "
        "started with `ray start` (default: $RAY_ADDRESS, else a local Ray for this command)",
    )
    add(
        "--gpus-per-run",
        type=float,
        metavar="G",
        help="with --executor ray: GPUs each run asks for, e.g. 0.25 to share a GPU "
        "between four runs (default: 1 when the cluster has GPUs and --device is not cpu)",
    )
    add(
        "--eval-tasks",
        type=int,
        help="unseen tasks of the final evaluation (default 200; the paper: 10)",
    )
    add("--eval-seed", type=int, help="seed of the final evaluation's tasks (default 0)")
    add(
        "--data-root",
        metavar="PATH",
        help="folder holding the data sets (default: $METACURRICULUM_DATA, else a user cache)",
    )
    add(
        "--download",
        action="store_true",
        help="download missing data through torchvision (needs internet; nothing is "
        "downloaded when the data is found)",
    )
    add(
        "--device",
        help="the student's device: cpu, cuda, cuda:1 (default: the env's, CUDA when present)",
    )
    add(
        "--overwrite",
        action="store_true",
        help="recompute finished runs whose stored config differs",
    )
    add("--no-plots", action="store_true", help="skip the plots at the end")
    add(
        "--import",
        dest="imports",
        action="append",
        metavar="MODULE",
        help="import MODULE here and in workers first (registers your envs or teachers)",
    )
    add(
        "--tensorboard",
        metavar="DIR",
        help="write TensorBoard event files of every run to DIR/<env_id>/<teacher>/seed_<s>/: "
        "ω, losses, reward and the teacher's summary per env step, the settings as "
        "hyper-parameters (pip install metacurriculum[tensorboard]); the run folders are "
        "the same without it",
    )
    add(
        "--wandb",
        metavar="PROJECT",
        help="log the same to Weights & Biases, a W&B run per run (pip install "
        "metacurriculum[wandb])",
    )
    add(
        "--wandb-mode",
        choices=("online", "offline", "disabled"),
        help="with --wandb: offline writes the runs locally, for `wandb sync` (default: "
        "$WANDB_MODE, else online)",
    )
    bench.set_defaults(func=_cmd_bench)

    train = sub.add_parser(
        "train-teacher",
        help="train a Stable-Baselines3 teacher on an env and save it",
        description="Train an SB3 model (PPO, A2C, SAC, DQN) as a teacher, with the settings "
        "that learn a curriculum on the analytic students (the env gets the algorithm's reward "
        "and action type unless --env-kwargs says otherwise), and save it as a .zip that "
        "`bench --teachers sb3 --teacher-kwargs sb3:path=...,algo=...` runs. The policy is "
        "evaluated as a teacher on held-out seeds beside none and random (when training ends, "
        "or every --eval-freq env steps), and a policy that beats neither is a warning. Each "
        "env step trains the student: on a real student a few hundred take a while. "
        "Loading a saved model runs code stored in it (SB3 unpickles its policy class "
        "and spaces): share and load only models you trust.",
    )
    add = train.add_argument
    add("--algo", required=True, choices=("ppo", "a2c", "sac", "dqn"), help="the SB3 algorithm")
    add("--env", required=True, metavar="ID", help="the env id to train on")
    add("--timesteps", type=int, default=500, help="env steps to train for (default 500)")
    add("--seed", type=int, default=0, help="seed of the model (default 0)")
    add("--env-kwargs", type=parse_kwargs, action="append", metavar="K=V,...", help="env settings")
    add("--data-root", metavar="PATH", help="folder holding the data sets")
    add("--download", action="store_true", help="download missing data through torchvision")
    add("--device", help="the student's device (default: the env's, CUDA when present)")
    add("--out", metavar="PATH", help="where to save the model (default teacher_<algo>.zip)")
    add("--no-progress", action="store_true", help="no progress bar")
    add(
        "--algo-kwargs",
        type=parse_kwargs,
        action="append",
        metavar="K=V,...",
        help="SB3 constructor settings over the tuned ones, e.g. gamma=0.99,n_steps=128",
    )
    add(
        "--n-envs",
        type=int,
        default=1,
        metavar="N",
        help="students trained at once, one policy acting for all (gym.make_vec; default 1)",
    )
    add(
        "--eval-freq",
        type=int,
        metavar="STEPS",
        help="evaluate the policy as a teacher every STEPS env steps on held-out seeds, "
        "beside none and random (default: once, when training ends)",
    )
    add(
        "--eval-episodes",
        type=int,
        default=5,
        metavar="N",
        help="held-out seeds per evaluation (default 5; 0: no evaluation, and no warning "
        "for a policy that learnt nothing)",
    )
    add(
        "--checkpoint-freq",
        type=int,
        metavar="STEPS",
        help="save the model every STEPS env steps to <out without .zip>_checkpoints/",
    )
    add(
        "--tensorboard-log",
        metavar="DIR",
        help="write TensorBoard event files there (SB3's logger and the evaluations; "
        "pip install metacurriculum[tensorboard])",
    )
    add(
        "--verbose",
        type=int,
        default=0,
        choices=(0, 1, 2),
        help="SB3's verbosity: 1 prints its training tables and each evaluation (default 0; "
        "evaluations are logged in any case)",
    )
    train.set_defaults(func=_cmd_train_teacher)

    for name, aliases, func, text in (
        ("table", ["report"], _cmd_table, "aggregate finished runs into results.md/.csv"),
        ("plot", [], _cmd_plot, "draw the plots of finished runs (PNG)"),
    ):
        command = sub.add_parser(name, aliases=aliases, help=text, description=text)
        command.add_argument("runs_dir", metavar="RUNS_DIR", help="a bench --out folder")
        if name == "plot":
            command.add_argument("--out", help="folder of the PNGs (default RUNS_DIR/plots)")
        command.set_defaults(func=func)
    for name, func, text in (
        ("envs", _cmd_envs, "list the registered env ids and their settings"),
        ("teachers", _cmd_teachers, "list the registered teachers"),
        ("learners", _cmd_learners, "list the meta-learners a student can be, and their settings"),
        ("presets", _cmd_presets, "list the benchmark presets"),
        ("families", _cmd_families, "list the task families: the parameters of ω"),
    ):
        sub.add_parser(name, help=text, description=text).set_defaults(func=func)
    return parser


class _StderrHandler(logging.StreamHandler):
    """A log handler writing to whatever ``sys.stderr`` is when it writes (``main`` may run
    again in one process with stderr redirected, as in a notebook or a test)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``metacurriculum`` command with ``argv`` (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 on a benchmark error, 130 when interrupted by
        Ctrl-C (SIGINT), 143 by SIGTERM (128 + the signal's number, as shells report it).
        After an interrupt, further SIGINT and SIGTERM are ignored until the process exits.
    """
    from metacurriculum.benchmarks.filesystem import describe_os_error
    from metacurriculum.benchmarks.plan import BenchmarkError
    from metacurriculum.benchmarks.workers import interruptible

    args = build_parser().parse_args(argv)
    package_logger = logging.getLogger("metacurriculum")
    if not package_logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        package_logger.addHandler(handler)
        package_logger.setLevel(logging.INFO)
    try:
        with interruptible():
            return args.func(args)
    except (BenchmarkError, FileNotFoundError, ImportError, ValueError, TypeError) as error:
        print(f"metacurriculum {args.command}: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # a filesystem fault nothing above named: still one line
        print(f"metacurriculum {args.command}: error: {describe_os_error(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as error:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second signal must not cut the exit
            signal.signal(sig, signal.SIG_IGN)
        signum = getattr(error, "signum", signal.SIGINT)
        finish = " to finish the remaining runs" if args.command == "bench" else ""
        print(
            f"interrupted ({signal.Signals(signum).name}); finished runs are kept: rerun the "
            f"same command{finish}.",
            file=sys.stderr,
        )
        return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
