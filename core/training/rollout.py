"""The rollout phase of an RL step: prompts → completions → rewards → advantages.

    batch, record, metrics = rollout_phase(params, key, reference, shift, replay, program=p)

With ``replay=None`` (fresh sampling):

1. ``n = prompts_per_step`` prompts (``× oversample`` with dynamic sampling) from
   ``task.train_prompts(key)``; each is sampled ``G`` times (groups contiguous) with the
   program's sampler settings.
2. The task's verifier gives ``r`` and its components. With a reward transform and a
   ``RewardShift(ε, δ)``, ``δ`` of each completion is evaluated; with DAPO's soft overlong
   punishment (arXiv 2503.14476 eq. 13, ``L_max`` = N, ``L_cache`` = ``overlong_buffer``)
   ``overlong_factor × penalty`` is added to ``r``.
3. Dynamic sampling with static shapes: groups whose rewards differ are ranked first (random
   order among them), the first ``prompts_per_step`` groups are kept and any kept group with
   equal rewards is masked out (mask 0, so it leaves the token denominators too). DAPO
   re-samples until the batch is full; the static version trades that for a fixed budget.
4. ``logp_old`` is the sampler's log-prob when it samples the policy itself (temperature 1,
   no filtering), else the rollout parameters re-score the completions.

The :class:`RolloutRecord` of these steps is what a replay feeds back in (``replay=record``):
then nothing is sampled, and the recorded completions, behaviour log-probs, rewards and
``δ`` are used as they are. In both cases the objective then sees ``r' = r + ε·δ``, the
advantages are computed from ``r'`` with the program's estimator, and, when the objective has
a KL term (or ``score_reference`` asks for the ``kl_ref`` metric), the reference policy scores
the completions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from cliffjax.distributed.layout import Layout, sharded_partial
from cliffjax.models.lora import reference_or_base
from cliffjax.objectives import compute_advantages, kl_divergence
from cliffjax.objectives.advantages import std_safe
from cliffjax.objectives.shaping import soft_overlong_penalty
from cliffjax.sampling import sample, score
from cliffjax.tasks.base import prompt_mask_of
from cliffjax.training.program import RLProgram

Array = jax.Array
PyTree = Any


class Rollout(NamedTuple):
    """One update batch, ``B = prompts_per_step × G`` sequences in contiguous groups.

    Attributes:
      prompts: ``[B, P]`` int32 prompts (each repeated G times).
      completions: ``[B, N]`` int32 sampled completions.
      mask: ``[B, N]`` float32 completion mask (EOS included; 0 for masked-out groups).
      logp_old: ``[B, N]`` float32 log-probs of the behaviour policy.
      logp_ref: ``[B, N]`` float32 log-probs of the reference policy, or ``None`` when the
        objective has no KL term.
      advantages: ``[B]`` float32.
      rewards: ``[B]`` float32 rewards the objective sees (``r' = r + ε·δ``, shaped).
    """

    prompts: Array
    completions: Array
    mask: Array
    logp_old: Array
    logp_ref: Array | None
    advantages: Array
    rewards: Array


class RolloutRecord(NamedTuple):
    """What a step sampled, as recorded for replay (``B`` rows as in :class:`Rollout`).

    Attributes:
      prompts: ``[B, P]`` int32.
      completions: ``[B, N]`` int32.
      mask: ``[B, N]`` float32 (after dynamic-sampling masking).
      logp_old: ``[B, N]`` float32 behaviour log-probs.
      rewards: ``[B]`` float32 task reward after shaping, before the shift ``ε·δ``.
      delta: ``[B]`` float32 ``δ`` of each completion (0 without a transform).
    """

    prompts: Array
    completions: Array
    mask: Array
    logp_old: Array
    rewards: Array
    delta: Array


def masked_mean(x: Array, m: Array) -> Array:
    """``Σ x·m / max(Σ m, 1)``."""
    return jnp.sum(x * m) / jnp.maximum(jnp.sum(m), 1.0)


def _repeat(tree: PyTree, g: int) -> PyTree:
    return jax.tree.map(lambda x: jnp.repeat(x, g, axis=0), tree)


def _sample_record(
    params: PyTree, key: Array, shift: Any, program: RLProgram
) -> tuple[RolloutRecord, dict[str, Array]]:
    rl, task = program.rl, program.task
    g, p, n_prompts = rl.group_size, rl.prompts_per_step, program.n_prompts
    sampling = program.sampling
    k_prompt, k_sample, k_select = jax.random.split(key, 3)
    prompts, meta = task.train_prompts(k_prompt, n_prompts)
    # The sampler repeats each prompt G times itself (one prefill per prompt).
    pmask = prompt_mask_of(task, prompts)
    out = sample(program.graphdef, params, prompts, k_sample, sampling, prompt_mask=pmask)
    prompts, meta = _repeat(prompts, g), _repeat(meta, g)
    completions = out.completion
    mask = out.completion_mask.astype(jnp.float32)
    rewards, components = task.reward(completions, out.completion_mask, meta)
    rewards = rewards.astype(jnp.float32)
    if program.transform is not None and shift is not None:
        delta = program.transform.delta(shift.perturbation, completions, meta, components)
    else:
        delta = jnp.zeros_like(rewards)
    lengths = jnp.sum(mask, axis=1)
    if rl.overlong_buffer > 0:
        penalty = soft_overlong_penalty(lengths, sampling.max_new_tokens, rl.overlong_buffer)
        rewards = rewards + rl.overlong_factor * penalty
    metrics = {
        "reward_mean": jnp.mean(rewards),
        "reward_std": std_safe(rewards),
        "response_len": jnp.mean(lengths),
        "gen_tokens": jnp.sum(lengths),
    }
    for name, value in components.items():
        metrics[f"reward/{name}"] = jnp.mean(value.astype(jnp.float32))
    seen = rewards if shift is None else rewards + shift.eps * delta
    grouped = seen.reshape(n_prompts, g)
    mixed = jnp.max(grouped, axis=1) > jnp.min(grouped, axis=1)  # [n_prompts]
    metrics["mixed_group_frac"] = jnp.mean(mixed.astype(jnp.float32))
    logp = out.logp
    if rl.dynamic_sampling:
        priority = mixed.astype(jnp.float32) + 0.5 * jax.random.uniform(k_select, (n_prompts,))
        _, keep = jax.lax.top_k(priority, p)  # [p] group indices, mixed groups first
        rows = (keep[:, None] * g + jnp.arange(g)[None, :]).reshape(-1)  # [p*g]
        prompts, completions, logp = prompts[rows], completions[rows], logp[rows]
        rewards, delta = rewards[rows], delta[rows]
        keep_mixed = mixed[keep]
        mask = mask[rows] * jnp.repeat(keep_mixed, g).astype(jnp.float32)[:, None]
        metrics["masked_group_frac"] = 1.0 - jnp.mean(keep_mixed.astype(jnp.float32))
    if not program.samples_policy:
        logp = score(program.graphdef, params, prompts, completions, prompt_mask_of(task, prompts))
    record = RolloutRecord(prompts, completions, mask, logp * mask, rewards, delta)
    return record, metrics


def rollout_phase(
    params: PyTree,
    key: Array,
    reference: PyTree | None,
    shift: Any,
    replay: RolloutRecord | None,
    *,
    program: RLProgram,
    score_reference: bool = False,
) -> tuple[Rollout, RolloutRecord, dict[str, Array]]:
    """One rollout (module docstring); pure and traceable.

    Args:
      params: the rollout (current) policy parameters.
      key: this step's PRNG key (prompts, sampling, dynamic-sampling order).
      reference: reference parameters for the KL term (``None`` when not needed; with LoRA
        adapters in ``params``, ``None`` means the base model: ``params`` with adapters off).
      shift: a ``cliffjax.analysis.RewardShift`` (``r' = r + ε·δ``) or ``None``.
      replay: a recorded step to train on instead of sampling, or ``None``.
      program: the static settings.
      score_reference: score the reference for the ``kl_ref`` metric even without a KL term.
    Returns:
      ``(batch, record, metrics)``. Metrics: ``reward_mean`` / ``reward_std`` (task reward
      after shaping, over every sampled completion), ``reward_seen_mean`` (what the objective sees, ``r + ε·δ``), the
      advantage statistics of ``compute_advantages`` and, when sampled, ``response_len``,
      ``gen_tokens``, ``reward/<component>``, ``mixed_group_frac`` (and ``masked_group_frac``
      with dynamic sampling); ``kl_ref`` (k3 estimate of KL(π_old ‖ π_ref) per token) when the
      reference is scored.
    """
    if replay is None:
        record, metrics = _sample_record(params, key, shift, program)
    else:
        record = replay
        lengths = jnp.sum(record.mask, axis=1)
        metrics = {
            "reward_mean": jnp.mean(record.rewards),
            "reward_std": std_safe(record.rewards),
            "response_len": jnp.mean(lengths),
            "gen_tokens": jnp.sum(lengths),
        }
    seen = record.rewards if shift is None else record.rewards + shift.eps * record.delta
    metrics["reward_seen_mean"] = jnp.mean(seen)
    adv, adv_aux = compute_advantages(seen, program.rl.group_size, program.adv_cfg)
    for name in ("zero_variance_frac", "adv_std", "adv_abs_max"):
        metrics[name] = adv_aux[name]
    logp_ref = None
    if program.needs_reference or score_reference:
        reference = reference_or_base(reference, params)  # LoRA: the base, no second copy
        if reference is None:
            raise ValueError("the objective has a KL term: pass the reference parameters")
        logp_ref = score(
            program.graphdef,
            reference,
            record.prompts,
            record.completions,
            prompt_mask_of(program.task, record.prompts),
        )
        kl = kl_divergence(record.logp_old, logp_ref, "k3")
        metrics["kl_ref"] = masked_mean(kl, record.mask)
    batch = Rollout(
        record.prompts,
        record.completions,
        record.mask,
        record.logp_old,
        logp_ref if program.needs_reference else None,
        adv,
        seen,
    )
    return batch, record, metrics


_rollout_jit = jax.jit(rollout_phase, static_argnames=("program", "score_reference"))


def make_rollout_phase(
    program: RLProgram, layout: Layout | None = None, score_reference: bool = False
) -> Callable[..., tuple[Rollout, RolloutRecord, dict[str, Array]]]:
    """A jit'd ``rollout(params, key, reference, shift, replay) -> (batch, record, metrics)``
    (sharded by ``layout`` when given: parameters by the rules, the batch along the data
    axes)."""
    return sharded_partial(
        _rollout_jit,
        layout,
        ("model", "replicated", "model", "replicated", "batch"),
        ("batch", "batch", "replicated"),
        program=program,
        score_reference=score_reference,
    )
