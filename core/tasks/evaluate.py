"""Greedy evaluation of a policy on a task's held-out set, batched with static shapes."""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cliffjax.sampling.sampler import sample_with_model
from cliffjax.tasks.base import Task, prompt_mask_of, sampling_config

Array = jax.Array


def greedy_rewards(
    graphdef: Any, params: Any, task: Task, prompts: Array, meta: dict[str, Array]
) -> tuple[Array, dict[str, Array], Array, Array]:
    """Greedy completions of ``prompts`` scored by the task: ``(reward [n], components,
    completion [n, N], completion_mask [n, N])``. Pure and traceable: the one evaluation
    step both evaluators (this module's batched ``evaluate`` and the trainer's
    ``cliffjax.training.evaluation.make_evaluator``) run."""
    cfg = sampling_config(task, temperature=0.0)
    model, pmask = nnx.merge(graphdef, params), prompt_mask_of(task, prompts)
    out = sample_with_model(model, prompts, jax.random.key(0), cfg, prompt_mask=pmask)
    reward, components = task.reward(out.completion, out.completion_mask, meta)
    return reward, components, out.completion, out.completion_mask


def _batches(prompts: Array, meta: dict[str, Array], batch_size: int):
    """``(n_padded, [(prompts, meta) per batch])``: the rows cut into batches of
    ``min(batch_size, n)``, the last one padded by wrapping around (callers drop rows past
    ``n``), so every batch has one shape and one compiled program."""
    n = prompts.shape[0]
    bs = min(batch_size, n)
    n_batches = -(-n // bs)
    idx = np.arange(n_batches * bs) % n
    out = []
    for i in range(n_batches):
        sel = jnp.asarray(idx[i * bs : (i + 1) * bs])
        out.append((prompts[sel], jax.tree.map(lambda x, sel=sel: x[sel], meta)))
    return n_batches * bs, out


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
    rewards, comps, completions = [], [], []
    for batch_prompts, batch_meta in _batches(prompts, meta, batch_size)[1]:
        r, c, comp = _eval_batch(graphdef, params, batch_prompts, batch_meta, task=task)
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


def pass_at_k(n: Any, c: Any, k: int) -> np.ndarray:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct (Chen et al. 2021,
    arXiv:2107.03374, Eq. 1):

        pass@k = 1 − C(n − c, k) / C(n, k) = 1 − Π_{i = n−c+1}^{n} (1 − k / i)

    (the product form avoids huge binomials). ``n``, ``c``: int arrays (broadcast); ``k <= n``.
    Returns float64, 1 where ``n − c < k``."""
    n, c = np.broadcast_arrays(np.asarray(n, np.int64), np.asarray(c, np.int64))
    if k < 1 or np.any(k > n):
        raise ValueError(f"pass@k needs 1 <= k <= n, got k={k} and n={n.min()}")
    if np.any((c < 0) | (c > n)):
        raise ValueError("pass@k needs 0 <= c <= n")
    out = np.ones(n.shape, np.float64)
    for idx in np.ndindex(n.shape):
        ni, ci = int(n[idx]), int(c[idx])
        if ni - ci >= k:
            i = np.arange(ni - ci + 1, ni + 1, dtype=np.float64)
            out[idx] = 1.0 - np.prod(1.0 - k / i)
    return out


@partial(jax.jit, static_argnames=("task", "cfg"))
def _sample_batch(graphdef, params, prompts, meta, key, task: Task, cfg):
    pmask = prompt_mask_of(task, prompts)
    out = sample_with_model(nnx.merge(graphdef, params), prompts, key, cfg, prompt_mask=pmask)
    g = cfg.group_size
    meta = jax.tree.map(lambda x: jnp.repeat(x, g, 0), meta)
    reward, components = task.reward(out.completion, out.completion_mask, meta)
    return reward, components, jnp.sum(out.completion_mask, axis=1)


def evaluate_sampled(
    graphdef: Any,
    params: Any,
    task: Task,
    key: Array,
    n_samples: int,
    ks: tuple[int, ...] = (1,),
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 64,
    prompts: Array | None = None,
    meta: dict[str, Array] | None = None,
) -> dict[str, float]:
    """pass@k and mean@n over ``n_samples`` completions per held-out prompt.

    Every prompt of the eval set (or ``prompts``/``meta``) gets ``n_samples`` completions at
    ``temperature`` (``top_p``); a sample *passes* a component when its value is > 0.5 (the
    binary verifiers score 1/0). Returned, as Python floats:

    * ``pass@k`` (``"correct"``) and ``<component>_pass@k`` for every ``k`` of ``ks``: the
      unbiased estimator :func:`pass_at_k` averaged over prompts;
    * ``mean@n`` (``"correct"``), ``<component>_mean@n`` and ``reward_mean@n``: the mean
      value over all samples (the expected single-sample score);
    * ``len_mean@n`` (completion length, EOS included) and ``n`` (prompts).

    Batches of ``batch_size`` prompts (the last padded by wrapping; padded rows dropped) keep
    one compiled program per (task, batch, sampler settings); batch ``i`` uses
    ``fold_in(key, i)``.
    """
    if not all(1 <= k <= n_samples for k in ks):
        raise ValueError(f"evaluate_sampled: every k of ks={ks} must be in [1, {n_samples}]")
    if prompts is None:
        prompts, meta = task.eval_set()
    cfg = sampling_config(task, temperature=temperature, top_p=top_p, group_size=n_samples)
    n = prompts.shape[0]
    n_padded, batches = _batches(prompts, meta, batch_size)
    rewards, comps, lens = [], [], []
    for i, (batch_prompts, batch_meta) in enumerate(batches):
        r, c, ln = _sample_batch(
            graphdef,
            params,
            batch_prompts,
            batch_meta,
            jax.random.fold_in(key, i),
            task=task,
            cfg=cfg,
        )
        rewards.append(np.asarray(r))
        comps.append({k: np.asarray(v) for k, v in c.items()})
        lens.append(np.asarray(ln))
    shape = (n_padded, n_samples)
    reward = np.concatenate(rewards).reshape(shape)[:n]
    result: dict[str, float] = {"n": n, "reward_mean@n": float(reward.mean())}
    result["len_mean@n"] = float(np.concatenate(lens).reshape(shape)[:n].mean())
    for name in comps[0]:
        values = np.concatenate([c[name] for c in comps]).reshape(shape)[:n]
        prefix = "" if name == "correct" else f"{name}_"
        result[f"{prefix}mean@n"] = float(values.mean())
        n_pass = (values > 0.5).sum(axis=1)
        for k in ks:
            result[f"{prefix}pass@{k}"] = float(pass_at_k(n_samples, n_pass, k).mean())
    return result


def completion_table(
    graphdef: Any,
    params: Any,
    task: Task,
    n: int,
    prompts: Array | None = None,
    meta: dict[str, Array] | None = None,
) -> list[dict[str, Any]]:
    """Greedy completions of the first ``n`` held-out prompts as table rows: ``prompt`` and
    ``completion`` (decoded text; the prompt's padding dropped), ``reward`` and every reward
    component (floats). For logging backends (``RunLogger.log_samples``)."""
    if prompts is None:
        prompts, meta = task.eval_set()
    n = min(n, prompts.shape[0])
    prompts = prompts[:n]
    meta = jax.tree.map(lambda x: x[:n], meta)
    reward, comps, completion = _eval_batch(graphdef, params, prompts, meta, task=task)
    tok = task.tokenizer
    pmask = prompt_mask_of(task, prompts)
    texts = tok.decode_batch(np.asarray(completion))
    rows = []
    for i in range(n):
        ids = np.asarray(prompts[i])
        if pmask is not None:
            ids = ids[np.asarray(pmask[i]) == 1]
        row = {"prompt": tok.decode(ids.tolist()), "completion": texts[i]}
        row["reward"] = float(reward[i])
        row.update({k: float(v[i]) for k, v in sorted(comps.items())})
        rows.append(row)
    return rows
