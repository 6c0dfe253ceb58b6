"""Greedy evaluation of a policy on a task's held-out set, batched with static shapes."""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cliffjax.sampling.sampler import sample_with_model
from cliffjax.tasks.base import Task, sampling_config

Array = jax.Array


def greedy_rewards(
    graphdef: Any, params: Any, task: Task, prompts: Array, meta: dict[str, Array]
) -> tuple[Array, dict[str, Array], Array, Array]:
    """Greedy completions of ``prompts`` scored by the task: ``(reward [n], components,
    completion [n, N], completion_mask [n, N])``. Pure and traceable: the one evaluation
    step both evaluators (this module's batched ``evaluate`` and the trainer's
    ``cliffjax.training.evaluation.make_evaluator``) run."""
    cfg = sampling_config(task, temperature=0.0)
    out = sample_with_model(nnx.merge(graphdef, params), prompts, jax.random.key(0), cfg)
    reward, components = task.reward(out.completion, out.completion_mask, meta)
    return reward, components, out.completion, out.completion_mask


@partial(jax.jit, static_argnames=("task",))
def _eval_batch(graphdef, params, prompts, meta, task: Task):
    reward, components, completion, _ = greedy_rewards(graphdef, params, task, prompts, meta)
    return reward, components, completion


def evaluate(
    graphdef: Any,
    params: Any,
    task: Task,
    batch_size: int = 256,
    prompts: Array | None = None,
    meta: dict[str, Array] | None = None,
    return_completions: bool = False,
) -> dict[str, Any]:
    """Greedy (temperature 0) accuracy and mean reward on the held-out set.

    The set is cut into batches of ``batch_size`` (the last one padded by repeating rows, which
    are then dropped), so one program is compiled per (task, batch size) and reused across
    calls. ``prompts``/``meta`` default to ``task.eval_set()``.

    Returns:
      ``{"accuracy": mean of components["correct"], "reward": mean reward,
      "<component>": mean of each component, "n": number of prompts}`` as Python floats, plus
      ``"completions"`` (``[n, N]`` numpy) if ``return_completions``.
    """
    if prompts is None:
        prompts, meta = task.eval_set()
    n = prompts.shape[0]
    bs = min(batch_size, n)
    n_batches = -(-n // bs)
    idx = np.arange(n_batches * bs) % n  # pad by wrapping around
    rewards, comps, completions = [], [], []
    for i in range(n_batches):
        sel = jnp.asarray(idx[i * bs : (i + 1) * bs])
        batch_meta = jax.tree.map(lambda x, sel=sel: x[sel], meta)
        r, c, comp = _eval_batch(graphdef, params, prompts[sel], batch_meta, task=task)
        rewards.append(r)
        comps.append(c)
        completions.append(comp)
    reward = np.concatenate([np.asarray(r) for r in rewards])[:n]
    result: dict[str, Any] = {"reward": float(reward.mean()), "n": n}
    for name in comps[0]:
        values = np.concatenate([np.asarray(c[name]) for c in comps])[:n]
        result[name] = float(values.mean())
    result["accuracy"] = result["correct"]
    if return_completions:
        result["completions"] = np.concatenate([np.asarray(c) for c in completions])[:n]
    return result
