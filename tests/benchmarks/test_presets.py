"""Presets: every preset is a valid benchmark; the paper's carry Table I; options override."""

from __future__ import annotations

import pytest

from metacurriculum.benchmarks import PRESETS, BenchConfig, BenchmarkError, resolve
from metacurriculum.benchmarks.plan import validate


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_resolves_to_valid_runs(name):
    config = resolve(name)
    specs = config.specs()
    validate(specs)
    preset = PRESETS[name]
    assert len(specs) == len(preset.envs) * len(preset.teachers) * len(preset.seeds)
    assert "none" in config.teachers  # the baseline of the statistics


@pytest.mark.parametrize("name", ["paper-mnist", "paper-omniglot5", "paper-omniglot20"])
def test_paper_presets_carry_table_one(name):
    (spec, *_) = resolve(name).specs()
    settings = spec.env_settings()
    assert settings.learner == "maml" and settings.meta_lr == 0.001
    assert settings.learner_kwargs == {"inner_lr": 0.1, "inner_steps": 5, "first_order": False}
    assert (settings.meta_batch, settings.update_rate, settings.k_shot) == (8, 4, 1)
    assert settings.budget == (2000 if "mnist" in name else 1000)
    assert settings.n_max == {"paper-mnist": 10, "paper-omniglot5": 5, "paper-omniglot20": 20}[name]
    # MAML's Omniglot protocol, as the paper follows it, and 15 evaluation queries per class.
    assert (settings.omniglot_protocol, settings.eval_q_query) == ("maml", 15)
    assert resolve(name).teacher_kwargs["adaptive"] == {"step": 2.0}


@pytest.mark.parametrize("learner", ["protonet", "anil", "reptile"])
def test_presets_take_any_learner_and_keep_table_one_where_it_applies(learner):
    config = resolve("reduced", env_kwargs={"learner": learner})
    settings = config.specs()[0].env_settings()
    assert settings.learner == learner
    expected = {"protonet": {}, "anil": {"inner_lr": 0.1, "inner_steps": 5, "first_order": True}}
    expected["reptile"] = {"inner_lr": 0.1, "inner_steps": 5}
    assert settings.learner_kwargs == expected[learner]


def test_paper_preset_runs_all_three_experiments():
    envs = {spec.env_id for spec in resolve("paper").specs()}
    assert envs == {f"MetaCurriculum-{n}-v0" for n in ("MNIST", "Omniglot5", "Omniglot20")}


def test_options_override_fields_and_merge_kwargs():
    config = resolve(
        "reduced",
        seeds=(7,),
        teachers=("none", "adaptive"),
        env_kwargs={"budget": 8},
        teacher_kwargs={"adaptive": {"window": 3}},
        out="somewhere",
        workers=None,  # None keeps the preset's value
    )
    preset = PRESETS["reduced"]
    assert config.seeds == (7,) and config.teachers == ("none", "adaptive")
    assert config.env_kwargs == {**preset.env_kwargs, "budget": 8}
    assert config.teacher_kwargs == {"adaptive": {"step": 2.0, "window": 3}}
    assert config.out == "somewhere" and config.eval_tasks == preset.eval_tasks


def test_without_a_preset_options_fill_the_defaults():
    assert resolve(None, seeds=(1, 2), out="x") == BenchConfig(seeds=(1, 2), out="x")


def test_unknown_preset_and_option_are_clear_errors():
    with pytest.raises(BenchmarkError, match=r"unknown preset 'papr'; choose one of .*reduced"):
        resolve("papr")
    with pytest.raises(BenchmarkError, match="unknown benchmark option"):
        resolve(None, sedes=(1,))


@pytest.mark.slow
def test_reduced_preset_runs_end_to_end(tmp_path):
    """The README's main job, one seed and two teachers (about 2 minutes on 2 cores)."""
    from metacurriculum.cli import main

    argv = ["bench", "--preset", "reduced", "--seeds", "0,", "--teachers", "none,adaptive"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "results.csv").exists()
    assert (tmp_path / "plots" / "adaptation.png").stat().st_size > 10_000
