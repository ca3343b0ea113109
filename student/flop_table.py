"""FLOPs of the registered ids' students, counted ahead: the quadratics of
:mod:`~metacurriculum.student.compute`, shipped so that the analytic envs report their
compute without importing torch and a run needs no count at its start.

Each entry is one network and learner (``network``, as
:func:`~metacurriculum.student.compute.network_fields` gives it), one kind of work and
task shape (``k_shot`` support and ``q_query`` query images per class), and the FLOPs of
one task of it with 1, 2 and 3 classes, which fix every ``n`` (a fourth count at ``n = 4``
confirmed the quadratic). Written by ``python -m metacurriculum.student.compute``;
``tests/student/test_compute.py`` recounts every entry, so a change to a learner or the
network that changes its FLOPs fails there until this file is written anew.
"""

from typing import Any

COUNTED: list[dict[str, Any]] = [
    {
        "network": {
            "n_max": 10,
            "in_channels": 1,
            "image_size": 28,
            "hidden": 64,
            "depth": 4,
            "learner": "maml",
            "learner_kwargs": {"inner_lr": 0.1, "inner_steps": 5, "first_order": False},
        },
        "kind": "meta_step",
        "k_shot": 1,
        "q_query": 15,
        "flops_at_n_1_2_3": [1735211520, 3470423040, 5205634560],
    },
    {
        "network": {
            "n_max": 10,
            "in_channels": 1,
            "image_size": 28,
            "hidden": 64,
            "depth": 4,
            "learner": "maml",
            "learner_kwargs": {"inner_lr": 0.1, "inner_steps": 5, "first_order": False},
        },
        "kind": "measure",
        "k_shot": 1,
        "q_query": 15,
        "flops_at_n_1_2_3": [584424960, 1168849920, 1753274880],
    },
    {
        "network": {
            "n_max": 10,
            "in_channels": 1,
            "image_size": 28,
            "hidden": 64,
            "depth": 4,
            "learner": "maml",
            "learner_kwargs": {"inner_lr": 0.1, "inner_steps": 5, "first_order": False},
        },
        "kind": "evaluate",
        "k_shot": 1,
        "q_query": 15,
        "flops_at_n_1_2_3": [2056776960, 4113553920, 6170330880],
    },
    {
        "network": {
            "n_max": 5,
            "in_channels": 1,
            "image_size": 28,
            "hidden": 64,
            "depth": 4,
            "learner": "maml",
            "learner_kwargs": {"inner_lr": 0.1, "inner_steps": 5, "first_order": False},
        },
        "kind": "meta_step",
        "k_shot": 1,
        "q_query": 15,
        "flops_at_n_1_2_3": [1735153920, 3470307840, 5205461760],
    },
    {
        "network": {
            "n_max": 5,
            "in_channels": 1,
            "image_size": 28,
            "hidden": 64,
            "depth": 4,
            "learner": "maml",
            "learner_kwargs": {"inner_lr": 0.1, "inner_steps": 5, "first_order": False},
        },
        "kind": "measure",
        "k_shot": 1,
        "q_query": 15,
        "flops_at_n_1_2_3": [584405760, 1168811520, 1753217280],
    },
    {
        "network": {
            "n_max": 5,
            "in_channels": 1,
            "image_size": 28,
            "hidden": 64,
            "depth": 4,
            "learner": "maml",
            "learner_kwargs": {"inner_lr": 0.1, "inner_steps": 5, "first_order": False},
        },
        "kind": "evaluate",
        "k_shot": 1,
        "q_query": 15,
        "flops_at_n_1_2_3": [2056709760, 4113419520, 6170129280],
    },
    {
        "network": {
            "n_max": 20,
            "in_channels": 1,
            "image_size": 28,
            "hidden": 64,
            "depth": 4,
            "learner": "maml",
            "learner_kwargs": {"inner_lr": 0.1, "inner_steps": 5, "first_order": False},
        },
        "kind": "meta_step",
        "k_shot": 1,
        "q_query": 15,
        "flops_at_n_1_2_3": [1735326720, 3470653440, 5205980160],
    },
    {
        "network": {
            "n_max": 20,
            "in_channels": 1,
            "image_size": 28,
            "hidden": 64,
            "depth": 4,
            "learner": "maml",
            "learner_kwargs": {"inner_lr": 0.1, "inner_steps": 5, "first_order": False},
        },
        "kind": "measure",
        "k_shot": 1,
        "q_query": 15,
        "flops_at_n_1_2_3": [584463360, 1168926720, 1753390080],
    },
    {
        "network": {
            "n_max": 20,
            "in_channels": 1,
            "image_size": 28,
            "hidden": 64,
            "depth": 4,
            "learner": "maml",
            "learner_kwargs": {"inner_lr": 0.1, "inner_steps": 5, "first_order": False},
        },
        "kind": "evaluate",
        "k_shot": 1,
        "q_query": 15,
        "flops_at_n_1_2_3": [2056911360, 4113822720, 6170734080],
    },
    {
        "network": {
            "n_max": 5,
            "in_channels": 1,
            "image_size": 28,
            "hidden": 8,
            "depth": 2,
            "learner": "maml",
            "learner_kwargs": {"inner_lr": 0.1, "inner_steps": 1, "first_order": False},
        },
        "kind": "meta_step",
        "k_shot": 1,
        "q_query": 2,
        "flops_at_n_1_2_3": [4461744, 8923488, 13385232],
    },
    {
        "network": {
            "n_max": 5,
            "in_channels": 1,
            "image_size": 28,
            "hidden": 8,
            "depth": 2,
            "learner": "maml",
            "learner_kwargs": {"inner_lr": 0.1, "inner_steps": 1, "first_order": False},
        },
        "kind": "measure",
        "k_shot": 1,
        "q_query": 2,
        "flops_at_n_1_2_3": [1600144, 3200288, 4800432],
    },
    {
        "network": {
            "n_max": 5,
            "in_channels": 1,
            "image_size": 28,
            "hidden": 8,
            "depth": 2,
            "learner": "maml",
            "learner_kwargs": {"inner_lr": 0.1, "inner_steps": 1, "first_order": False},
        },
        "kind": "evaluate",
        "k_shot": 1,
        "q_query": 15,
        "flops_at_n_1_2_3": [11193168, 22386336, 33579504],
    },
]
