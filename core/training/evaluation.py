"""Held-out evaluation: greedy decoding on the task's fixed eval set, scored by its verifier."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from cliffjax.distributed.layout import Layout, sharded_partial
from cliffjax.tasks.evaluate import greedy_rewards

Array = jax.Array


@functools.partial(jax.jit, static_argnames=("graphdef", "task"))
def _evaluate(params: Any, *, graphdef: Any, task: Any) -> dict[str, Array]:
    prompts, meta = task.eval_set()
    reward, components, _, mask = greedy_rewards(graphdef, params, task, prompts, meta)
    return {
        "eval_accuracy": jnp.mean(components["correct"].astype(jnp.float32)),
        "eval_reward": jnp.mean(reward.astype(jnp.float32)),
        "eval_len": jnp.mean(jnp.sum(mask, axis=1).astype(jnp.float32)),
    }


def make_evaluator(
    graphdef: Any, task: Any, layout: Layout | None = None
) -> Callable[[Any], dict[str, Array]]:
    """A jit'd ``evaluate(params) -> {"eval_accuracy", "eval_reward", "eval_len"}``.

    Greedy decoding (temperature 0) of ``task.max_new_tokens`` tokens after every prompt of
    ``task.eval_set()`` (held out: never used for training); accuracy is the mean of the
    verifier's ``"correct"`` component, ``eval_reward`` the mean reward, ``eval_len`` the mean
    completion length (EOS included). Equal ``(graphdef, task)`` share one compilation.
    """
    return sharded_partial(
        _evaluate, layout, ("model",), "replicated", graphdef=graphdef, task=task
    )
