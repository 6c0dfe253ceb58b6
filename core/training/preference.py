"""Preference optimization (DPO, RPO) on pairs from the policy's own samples or a fixed set.

    pairs = make_self_pairs(...)       # jit: sample G per prompt, verifier ranks, best vs worst
    batch, m1 = pairs(params, reference, key)
    update = make_preference_update(...)
    state, m2 = update(state, batch)

Self pairs (``source="self"``): each of ``P`` prompts gets ``G`` completions from the current
policy; the verifier's best completion is the chosen one ``y_w`` and its worst the rejected
``y_l`` (first index on ties). A prompt whose completions all score the same gives no
preference: its pair keeps its slot (static shapes) with both masks zeroed, which the
objectives skip (their denominator counts valid pairs only).

Dataset pairs (``source="dataset"``, addition only): for training prompts, ``y_w`` is the exact
answer and ``y_l`` the flawed teacher's carry-free answer; prompts without a carry (identical
answers) are masked out the same way.

The reference log-probs come from the frozen warm-start parameters. Each step is one optimizer
step on ``loss_sum / n_valid_pairs`` (``spec.loss``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from cliffjax.distributed.layout import Layout, sharded_partial
from cliffjax.models.lora import reference_or_base, trainable_value_and_grad
from cliffjax.objectives import PreferenceBatch
from cliffjax.objectives.registry import ObjectiveSpec
from cliffjax.sampling import SamplingConfig, sample, score, score_with_entropy
from cliffjax.tasks.base import sampling_config
from cliffjax.training.config import OptimConfig, PreferenceConfig
from cliffjax.training.metrics import to_host
from cliffjax.training.state import TrainState, make_optimizer, optimizer_step

Array = jax.Array
PyTree = Any


class Pairs(NamedTuple):
    """``P`` preference pairs.

    Attributes:
      prompts: ``[P, L]`` int32.
      chosen: ``[P, N]`` int32 chosen completions y_w.
      rejected: ``[P, N]`` int32 rejected completions y_l.
      mask_chosen: ``[P, N]`` float32 (all 0 for a masked pair).
      mask_rejected: ``[P, N]`` float32 (all 0 for a masked pair).
      ref_chosen: ``[P, N]`` reference log-probs of y_w.
      ref_rejected: ``[P, N]`` reference log-probs of y_l.
    """

    prompts: Array
    chosen: Array
    rejected: Array
    mask_chosen: Array
    mask_rejected: Array
    ref_chosen: Array
    ref_rejected: Array


def _with_reference(graphdef, reference, prompts, chosen, rejected, m_w, m_l) -> Pairs:
    both = jnp.concatenate([chosen, rejected], axis=0)
    ref = score(graphdef, reference, jnp.concatenate([prompts, prompts], axis=0), both)
    p = prompts.shape[0]
    return Pairs(prompts, chosen, rejected, m_w, m_l, ref[:p], ref[p:])


def preference_sampling_config(task: Any, cfg: PreferenceConfig) -> SamplingConfig:
    """The sampler settings used to build self pairs."""
    return sampling_config(task, temperature=cfg.temperature, group_size=cfg.group_size)


def _reference_or_base(reference: PyTree | None, params: PyTree) -> PyTree:
    """The reference; ``None`` with LoRA adapters means the base model (adapters off)."""
    reference = reference_or_base(reference, params)
    if reference is None:
        raise ValueError("preference optimization needs the reference parameters")
    return reference


@functools.partial(jax.jit, static_argnames=("graphdef", "task", "cfg"))
def _self_pairs(
    params: PyTree,
    reference: PyTree,
    key: Array,
    *,
    graphdef: Any,
    task: Any,
    cfg: PreferenceConfig,
) -> tuple[Pairs, dict[str, Array]]:
    g, p = cfg.group_size, cfg.prompts_per_step
    k_prompt, k_sample = jax.random.split(key)
    prompts, meta = task.train_prompts(k_prompt, p)
    rep = lambda x: jnp.repeat(x, g, axis=0)
    out = sample(graphdef, params, prompts, k_sample, preference_sampling_config(task, cfg))
    reward, _ = task.reward(out.completion, out.completion_mask, jax.tree.map(rep, meta))
    grouped = reward.astype(jnp.float32).reshape(p, g)
    best, worst = jnp.argmax(grouped, axis=1), jnp.argmin(grouped, axis=1)
    valid = (jnp.max(grouped, axis=1) > jnp.min(grouped, axis=1)).astype(jnp.float32)
    rows = jnp.arange(p) * g
    comp = out.completion
    mask = out.completion_mask.astype(jnp.float32)
    m_w = mask[rows + best] * valid[:, None]
    m_l = mask[rows + worst] * valid[:, None]
    batch = _with_reference(
        graphdef,
        _reference_or_base(reference, params),
        prompts,
        comp[rows + best],
        comp[rows + worst],
        m_w,
        m_l,
    )
    lengths = jnp.sum(mask, axis=1)
    metrics = {
        "reward_mean": jnp.mean(grouped),
        "reward_std": jnp.std(grouped),
        "pair_valid_frac": jnp.mean(valid),
        "response_len": jnp.mean(lengths),
        "gen_tokens": jnp.sum(lengths),
    }
    return batch, metrics


def make_self_pairs(
    graphdef: Any, task: Any, cfg: PreferenceConfig, layout: Layout | None = None
) -> Callable[[PyTree, PyTree, Array], tuple[Pairs, dict[str, Array]]]:
    """A jit'd ``pairs(params, reference, key) -> (Pairs, metrics)`` from the policy's samples.

    Metrics: ``reward_mean``/``reward_std`` of all samples, ``pair_valid_frac`` (prompts with a
    reward difference), ``response_len`` and ``gen_tokens``.
    """
    return sharded_partial(
        _self_pairs,
        layout,
        ("model", "model", "replicated"),
        ("batch", "replicated"),
        graphdef=graphdef,
        task=task,
        cfg=cfg,
    )


@functools.partial(jax.jit, static_argnames=("graphdef", "task", "cfg"))
def _dataset_pairs(
    params: PyTree,
    reference: PyTree,
    key: Array,
    *,
    graphdef: Any,
    task: Any,
    cfg: PreferenceConfig,
) -> tuple[Pairs, dict[str, Array]]:
    p, n = cfg.prompts_per_step, task.max_new_tokens
    prompts, meta = task.train_prompts(key, p)
    wrong = task.carry_free_answer(meta["a"], meta["b"])
    chosen, m_w = task.target(meta["answer"], n)
    rejected, m_l = task.target(wrong, n)
    valid = (wrong != meta["answer"]).astype(jnp.float32)[:, None]
    batch = _with_reference(
        graphdef,
        _reference_or_base(reference, params),
        prompts,
        chosen,
        rejected,
        m_w.astype(jnp.float32) * valid,
        m_l.astype(jnp.float32) * valid,
    )
    metrics = {"pair_valid_frac": jnp.mean(valid), "gen_tokens": jnp.zeros((), jnp.float32)}
    return batch, metrics


def make_dataset_pairs(
    graphdef: Any, task: Any, cfg: PreferenceConfig, layout: Layout | None = None
) -> Callable[[PyTree, PyTree, Array], tuple[Pairs, dict[str, Array]]]:
    """A jit'd ``pairs(params, reference, key) -> (Pairs, metrics)`` from the fixed pair set.

    Needs an addition task (``task.carry_free_answer``): y_w = exact answer, y_l = carry-free
    answer. ``params`` is unused (same signature as :func:`make_self_pairs`).
    """
    return sharded_partial(
        _dataset_pairs,
        layout,
        ("model", "model", "replicated"),
        ("batch", "replicated"),
        graphdef=graphdef,
        task=task,
        cfg=cfg,
    )


@functools.partial(
    jax.jit,
    static_argnames=("graphdef", "spec", "obj_cfg", "optim", "total_steps"),
    donate_argnums=0,
)
def _preference_update(
    state: TrainState,
    b: Pairs,
    *,
    graphdef: Any,
    spec: ObjectiveSpec,
    obj_cfg: Any,
    optim: OptimConfig,
    total_steps: int,
) -> tuple[TrainState, dict[str, Array]]:
    tx = make_optimizer(optim, total_steps)

    def loss_fn(params: PyTree):
        p = b.prompts.shape[0]
        logp, ent = score_with_entropy(
            graphdef,
            params,
            jnp.concatenate([b.prompts, b.prompts], axis=0),
            jnp.concatenate([b.chosen, b.rejected], axis=0),
        )
        batch = PreferenceBatch(
            logp_chosen=logp[:p],
            logp_rejected=logp[p:],
            ref_chosen=b.ref_chosen,
            ref_rejected=b.ref_rejected,
            mask_chosen=b.mask_chosen,
            mask_rejected=b.mask_rejected,
        )
        loss_sum, denom, aux = spec.loss(batch, obj_cfg)
        denom = jnp.maximum(jax.lax.stop_gradient(denom), 1e-8)
        aux = dict(aux)
        m = b.mask_chosen
        aux["entropy"] = jnp.sum(jax.lax.stop_gradient(ent[:p]) * m) / jnp.maximum(jnp.sum(m), 1)
        return loss_sum / denom, aux

    (loss, aux), grads = trainable_value_and_grad(loss_fn, state.params, has_aux=True)
    params, opt_state = optimizer_step(tx, state.params, state.opt_state, grads)
    metrics = {**aux, "loss": loss, "grad_norm": optax.tree.norm(grads)}
    return TrainState(params, opt_state, state.step + 1, state.key), metrics


def preference_optimizer(cfg: PreferenceConfig) -> optax.GradientTransformation:
    """The optimizer :func:`make_preference_update` uses (to build the initial state)."""
    return make_optimizer(cfg.optim, max(cfg.steps, 1))


def make_preference_update(
    graphdef: Any,
    spec: ObjectiveSpec,
    obj_cfg: Any,
    cfg: PreferenceConfig,
    layout: Layout | None = None,
) -> Callable[[TrainState, Pairs], tuple[TrainState, dict[str, Array]]]:
    """A jit'd ``update(state, pairs) -> (state, metrics)``: one optimizer step.

    The optimizer is ``preference_optimizer(cfg)``. Chosen and rejected completions go through
    one forward pass (``[2P, ...]``). Metrics: ``loss``, ``grad_norm`` (before clipping),
    ``entropy`` of the chosen responses, and the objective's aux. The state is donated.
    """
    return sharded_partial(
        _preference_update,
        layout,
        ("model", "batch"),
        ("model", "replicated"),
        donate_argnums=(0,),
        graphdef=graphdef,
        spec=spec,
        obj_cfg=obj_cfg,
        optim=cfg.optim,
        total_steps=max(cfg.steps, 1),
    )


def make_preference_step_fn(
    graphdef: Any,
    task: Any,
    spec: ObjectiveSpec,
    obj_cfg: Any,
    cfg: PreferenceConfig,
    reference: PyTree,
    data_key: Array,
    layout: Layout | None = None,
) -> Callable[[TrainState, int], tuple[TrainState, dict[str, float]]]:
    """Host step ``fn(state, i) -> (state, host metrics)``; pairs of step ``i`` use
    ``fold_in(data_key, i)``. Adds ``pairs_time``, ``update_time`` and ``tokens_per_s``
    (sampled completion tokens per second of the step; 0 for dataset pairs)."""
    if cfg.source == "self":
        make_pairs = make_self_pairs(graphdef, task, cfg, layout=layout)
    else:
        make_pairs = make_dataset_pairs(graphdef, task, cfg, layout=layout)
    update = make_preference_update(graphdef, spec, obj_cfg, cfg, layout=layout)

    def fn(state: TrainState, i: int):
        t0 = time.perf_counter()
        batch, metrics = make_pairs(state.params, reference, jax.random.fold_in(data_key, i))
        jax.block_until_ready(batch)
        t1 = time.perf_counter()
        state, update_metrics = update(state, batch)
        host = to_host({**metrics, **update_metrics})
        t2 = time.perf_counter()
        host["pairs_time"] = t1 - t0
        host["update_time"] = t2 - t1
        host["tokens_per_s"] = host["gen_tokens"] / max(t2 - t0, 1e-9)
        return state, host

    return fn
