"""Validation of the trainer config dataclasses and the learning-rate schedule."""

import dataclasses

import numpy as np
import pytest

from cliffjax.training.config import (
    CheckpointConfig,
    OptimConfig,
    PreferenceConfig,
    RLConfig,
    SFTConfig,
    TrainerConfig,
)
from cliffjax.training.state import learning_rate_schedule


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    [
        (OptimConfig, {"lr": 0.0}, "lr"),
        (OptimConfig, {"schedule": "linear"}, "schedule"),
        (OptimConfig, {"max_grad_norm": -1.0}, "max_grad_norm"),
        (OptimConfig, {"b2": 1.0}, "b2"),
        (SFTConfig, {"batch_size": 0}, "batch_size"),
        (RLConfig, {"minibatches": 3}, "minibatches"),
        (RLConfig, {"micro_batches": 3}, "micro_batches"),
        (RLConfig, {"advantage": "gae"}, "advantage"),
        (RLConfig, {"temperature": 0.0}, "temperature"),
        (RLConfig, {"top_p": 0.0}, "top_p"),
        (RLConfig, {"epochs": 0}, "epochs"),
        (PreferenceConfig, {"group_size": 1}, "group_size"),
        (PreferenceConfig, {"source": "web"}, "source"),
        (CheckpointConfig, {"keep": 0}, "keep"),
        (TrainerConfig, {"eval_every": -1}, "eval_every"),
    ],
)
def test_bad_value_names_the_field(cls, kwargs, field):
    with pytest.raises(ValueError, match=rf"^{field} must be"):
        cls(**kwargs)


def test_defaults_are_valid_and_frozen():
    cfg = TrainerConfig()
    assert cfg.rl.prompts_per_step * cfg.rl.group_size == 256
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.rl.steps = 3  # type: ignore[misc]


def test_schedule_warmup_then_cosine():
    cfg = OptimConfig(lr=1e-3, warmup_steps=10, schedule="cosine", final_lr=1e-4)
    sched = learning_rate_schedule(cfg, 100)
    np.testing.assert_allclose(float(sched(0)), 0.0)
    np.testing.assert_allclose(float(sched(5)), 5e-4, rtol=1e-6)
    np.testing.assert_allclose(float(sched(10)), 1e-3, rtol=1e-6)
    np.testing.assert_allclose(float(sched(100)), 1e-4, rtol=1e-5)
    const = learning_rate_schedule(OptimConfig(lr=1e-4, warmup_steps=10), 100)
    np.testing.assert_allclose([float(const(s)) for s in (0, 5, 10, 99)], [0, 5e-5, 1e-4, 1e-4])
