"""Online RL with any registered policy objective: rollout, then mu epochs of minibatch updates.

One RL step (all shapes static, so each function compiles once)::

    rollout = make_rollout(...)        # jit: prompts -> G samples each -> rewards -> advantages
    batch, m1 = rollout(params, key)
    batch, m_kl = make_reference_scorer(graphdef)(ref_params, batch)  # KL term or metric
    update = make_update(...)          # jit: epochs x minibatches optimizer steps (lax.scan)
    state, m2 = update(state, batch)

The jit'd functions live at module level and take the model structure, the task, the objective
and the configs as static (hashable) arguments, so two runs with equal configs in one process
(tests, in-process sweeps) share one compilation.

Rollout. ``P`` prompts (``P x oversample`` with dynamic sampling) are repeated ``G`` times
(groups contiguous, as ``compute_advantages`` expects), sampled with the rollout
``SamplingConfig`` and scored by the task's verifier. Optional DAPO shaping (arXiv 2503.14476):

* soft overlong punishment (eq. 13, ``cliffjax.objectives.shaping.soft_overlong_penalty`` with
  ``L_max`` = the generation budget N and ``L_cache`` = ``overlong_buffer``), times
  ``overlong_factor``, is added to the reward before advantages;
* dynamic sampling with static shapes: ``oversample x P`` prompts are sampled, groups with
  mixed rewards are ranked first (random order among them), the first ``P`` groups are kept and
  any kept group that still has equal rewards is masked out of the loss (mask 0, so it leaves
  the token denominators too). DAPO re-samples until the batch is full; the static-shape
  version trades that for a fixed over-sampling budget (the masked fraction is logged).

``logp_old`` is the sampler's log-prob when the sampling distribution is the policy
(temperature 1, no top-k/top-p); otherwise the rollout params re-score the completions (the
sampler's log-probs are those of the tempered distribution, which PPO ratios must not use).
The frozen reference is scored by a separate jit'd function, called every step when the
objective has a KL term and every ``kl_every`` steps (for the ``kl_ref`` metric) otherwise.

Update. The ``B = P x G`` rollout is split into ``minibatches`` minibatches per epoch from a
fresh permutation (reshaped, so shapes are static); each minibatch is one optimizer step on
``loss_sum / denominator`` from ``spec.loss``. With ``micro_batches > 1`` the minibatch is
processed in chunks whose loss sums, denominators and gradients are added before dividing, which
equals the whole-minibatch gradient exactly (up to float summation order).
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
from cliffjax.objectives import AdvantageConfig, PolicyBatch, compute_advantages, kl_divergence
from cliffjax.objectives.registry import ObjectiveSpec
from cliffjax.objectives.shaping import soft_overlong_penalty
from cliffjax.sampling import SamplingConfig, sample, score, score_with_entropy
from cliffjax.training.config import RLConfig
from cliffjax.training.metrics import to_host
from cliffjax.training.state import TrainState, make_optimizer

Array = jax.Array
PyTree = Any


class Rollout(NamedTuple):
    """One RL batch, ``B = P x G`` sequences in contiguous groups.

    Attributes:
      prompts: ``[B, P_len]`` int32 prompts (each repeated G times).
      completions: ``[B, N]`` int32 sampled completions.
      mask: ``[B, N]`` float32 completion mask (EOS included; 0 for masked-out groups).
      logp_old: ``[B, N]`` log-probs of the rollout policy.
      logp_ref: ``[B, N]`` log-probs of the reference policy, or ``None``.
      advantages: ``[B]`` advantages.
      rewards: ``[B]`` (shaped) rewards.
    """

    prompts: Array
    completions: Array
    mask: Array
    logp_old: Array
    logp_ref: Array | None
    advantages: Array
    rewards: Array


def _masked_mean(x: Array, m: Array) -> Array:
    return jnp.sum(x * m) / jnp.maximum(jnp.sum(m), 1.0)


def _repeat(tree: PyTree, g: int) -> PyTree:
    return jax.tree.map(lambda x: jnp.repeat(x, g, axis=0), tree)


def rollout_sampling_config(task: Any, rl: RLConfig) -> SamplingConfig:
    """The sampler settings of RL rollouts (the task fixes N, EOS and padding; the sampler draws
    ``group_size`` completions per prompt, groups contiguous)."""
    return SamplingConfig(
        max_new_tokens=task.max_new_tokens,
        temperature=rl.temperature,
        top_k=rl.top_k,
        top_p=rl.top_p,
        eos_id=task.tokenizer.eos_id,
        pad_id=task.tokenizer.pad_id,
        group_size=rl.group_size,
    )


@functools.partial(jax.jit, static_argnames=("graphdef", "task", "rl", "sampling", "adv_cfg"))
def _rollout(
    params: PyTree,
    key: Array,
    *,
    graphdef: Any,
    task: Any,
    rl: RLConfig,
    sampling: SamplingConfig,
    adv_cfg: AdvantageConfig,
) -> tuple[Rollout, dict[str, Array]]:
    g = rl.group_size
    p = rl.prompts_per_step
    n_prompts = p * (rl.oversample if rl.dynamic_sampling else 1)
    k_prompt, k_sample, k_select = jax.random.split(key, 3)
    prompts, meta = task.train_prompts(k_prompt, n_prompts)
    # The sampler repeats each prompt G times itself (one prefill per prompt).
    out = sample(graphdef, params, prompts, k_sample, sampling)
    prompts = _repeat(prompts, g)
    meta = _repeat(meta, g)
    mask = out.completion_mask.astype(jnp.float32)
    rewards, components = task.reward(out.completion, out.completion_mask, meta)
    rewards = rewards.astype(jnp.float32)
    lengths = jnp.sum(mask, axis=1)
    if rl.overlong_buffer > 0:
        penalty = soft_overlong_penalty(lengths, sampling.max_new_tokens, rl.overlong_buffer)
        rewards = rewards + rl.overlong_factor * penalty
    metrics = {
        "reward_mean": jnp.mean(rewards),
        "reward_std": jnp.std(rewards),
        "response_len": jnp.mean(lengths),
        "gen_tokens": jnp.sum(lengths),
    }
    for name, value in components.items():
        metrics[f"reward/{name}"] = jnp.mean(value.astype(jnp.float32))
    grouped = rewards.reshape(n_prompts, g)
    mixed = jnp.max(grouped, axis=1) > jnp.min(grouped, axis=1)  # [n_prompts]
    metrics["mixed_group_frac"] = jnp.mean(mixed.astype(jnp.float32))
    prompts_b, completions = prompts, out.completion
    logp_sampled = out.logp
    if rl.dynamic_sampling:
        priority = mixed.astype(jnp.float32) + 0.5 * jax.random.uniform(k_select, (n_prompts,))
        _, keep = jax.lax.top_k(priority, p)  # [p] group indices, mixed groups first
        rows = (keep[:, None] * g + jnp.arange(g)[None, :]).reshape(-1)  # [p*g]
        prompts_b, completions = prompts_b[rows], completions[rows]
        logp_sampled, rewards = logp_sampled[rows], rewards[rows]
        keep_mixed = mixed[keep]
        mask = mask[rows] * jnp.repeat(keep_mixed, g).astype(jnp.float32)[:, None]
        metrics["masked_group_frac"] = 1.0 - jnp.mean(keep_mixed.astype(jnp.float32))
    adv, adv_aux = compute_advantages(rewards, g, adv_cfg)
    for name in ("zero_variance_frac", "adv_std", "adv_abs_max"):
        metrics[name] = adv_aux[name]
    if sampling.temperature == 1.0 and sampling.top_k == 0 and sampling.top_p == 1.0:
        logp_old = logp_sampled  # the sampling distribution is the policy
    else:
        logp_old = score(graphdef, params, prompts_b, completions)
    batch = Rollout(prompts_b, completions, mask, logp_old, None, adv, rewards)
    return batch, metrics


def make_rollout(
    graphdef: Any,
    task: Any,
    rl: RLConfig,
    sampling: SamplingConfig,
    adv_cfg: AdvantageConfig,
    layout: Layout | None = None,
) -> Callable[[PyTree, Array], tuple[Rollout, dict[str, Array]]]:
    """A jit'd ``rollout(params, key) -> (Rollout, metrics)`` (module doc); ``logp_ref`` is None.

    Metrics: ``reward_mean``/``reward_std`` (over all sampled completions, after shaping),
    ``reward/<component>`` means, ``response_len``, ``gen_tokens`` (completion tokens sampled,
    EOS included), ``mixed_group_frac``, ``masked_group_frac`` (dynamic sampling) and the
    advantage statistics of ``compute_advantages``.
    """
    return sharded_partial(
        _rollout,
        layout,
        ("model", "replicated"),
        ("batch", "replicated"),
        graphdef=graphdef,
        task=task,
        rl=rl,
        sampling=sampling,
        adv_cfg=adv_cfg,
    )


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _score_reference(
    ref_params: PyTree, batch: Rollout, *, graphdef: Any
) -> tuple[Rollout, dict[str, Array]]:
    logp_ref = score(graphdef, ref_params, batch.prompts, batch.completions)
    kl = kl_divergence(batch.logp_old, logp_ref, "k3")
    return batch._replace(logp_ref=logp_ref), {"kl_ref": _masked_mean(kl, batch.mask)}


def make_reference_scorer(
    graphdef: Any,
    layout: Layout | None = None,
) -> Callable[[PyTree, Rollout], tuple[Rollout, dict[str, Array]]]:
    """A jit'd ``f(ref_params, batch) -> (batch with logp_ref, {"kl_ref": ...})``.

    ``kl_ref`` is the k3 estimate of KL(pi_old || pi_ref) per completion token (non-negative,
    unbiased for on-policy samples; arXiv 2402.03300 eq. 4), masked mean over the batch.
    """
    return sharded_partial(
        _score_reference, layout, ("model", "batch"), ("batch", "replicated"), graphdef=graphdef
    )


def _micro_terms(params: PyTree, micro: Rollout, graphdef, spec, obj_cfg):
    def loss_sum_fn(prm):
        logp, ent = score_with_entropy(graphdef, prm, micro.prompts, micro.completions)
        pb = PolicyBatch(
            logp=logp,
            logp_old=micro.logp_old,
            mask=micro.mask,
            advantages=micro.advantages,
            logp_ref=micro.logp_ref,
            rewards=micro.rewards,
        )
        loss_sum, denom, aux = spec.loss(pb, obj_cfg)
        aux = dict(aux)
        aux["entropy"] = _masked_mean(jax.lax.stop_gradient(ent), micro.mask)
        return loss_sum, (jax.lax.stop_gradient(denom), aux)

    (loss_sum, (denom, aux)), grads = jax.value_and_grad(loss_sum_fn, has_aux=True)(params)
    return grads, loss_sum, denom, aux


@functools.partial(
    jax.jit,
    static_argnames=("graphdef", "spec", "obj_cfg", "rl", "total_updates"),
    donate_argnums=0,
)
def _update(
    state: TrainState,
    batch: Rollout,
    *,
    graphdef: Any,
    spec: ObjectiveSpec,
    obj_cfg: Any,
    rl: RLConfig,
    total_updates: int,
) -> tuple[TrainState, dict[str, Array]]:
    tx = make_optimizer(rl.optim, total_updates)
    b = rl.prompts_per_step * rl.group_size
    n_mb, n_micro = rl.minibatches, rl.micro_batches
    mb = b // n_mb

    def minibatch_grads(params: PyTree, mbatch: Rollout):
        if n_micro == 1:
            grads, loss_sum, denom, aux = _micro_terms(params, mbatch, graphdef, spec, obj_cfg)
        else:
            chunks = jax.tree.map(lambda x: x.reshape(n_micro, mb // n_micro, *x.shape[1:]), mbatch)

            def body(carry, micro):
                g_acc, s_acc, d_acc = carry
                g, s, d, aux = _micro_terms(params, micro, graphdef, spec, obj_cfg)
                return (jax.tree.map(jnp.add, g_acc, g), s_acc + s, d_acc + d), aux

            zeros = jax.tree.map(jnp.zeros_like, params)
            init = (zeros, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))
            (grads, loss_sum, denom), auxs = jax.lax.scan(body, init, chunks)
            aux = jax.tree.map(jnp.mean, auxs)
        # An all-masked minibatch has loss_sum = 0 and denominator 0: treat it as loss 0.
        denom = jnp.maximum(denom, 1e-8)
        grads = jax.tree.map(lambda x: x / denom, grads)
        return grads, loss_sum / denom, aux

    key, k_perm = jax.random.split(state.key)
    perms = jax.vmap(lambda k: jax.random.permutation(k, b))(
        jax.random.split(k_perm, rl.epochs)
    ).reshape(rl.epochs * n_mb, mb)

    def body(carry, idx):
        params, opt_state = carry
        mbatch = jax.tree.map(lambda x: x[idx], batch)
        grads, loss, aux = minibatch_grads(params, mbatch)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        metrics = dict(aux)
        metrics["loss"] = loss
        metrics["grad_norm"] = optax.tree.norm(grads)
        return (params, opt_state), metrics

    (params, opt_state), per_step = jax.lax.scan(body, (state.params, state.opt_state), perms)
    metrics = {k: jnp.mean(v) for k, v in per_step.items()}
    metrics["grad_norm_max"] = jnp.max(per_step["grad_norm"])
    metrics["loss_first"] = per_step["loss"][0]
    metrics["loss_last"] = per_step["loss"][-1]
    return TrainState(params, opt_state, state.step + 1, key), metrics


def rl_total_updates(rl: RLConfig) -> int:
    """Optimizer updates of an RL phase (the length of the learning-rate schedule)."""
    return max(rl.steps * rl.epochs * rl.minibatches, 1)


def rl_optimizer(rl: RLConfig) -> optax.GradientTransformation:
    """The optimizer :func:`make_update` uses (to build the initial ``TrainState``)."""
    return make_optimizer(rl.optim, rl_total_updates(rl))


def make_update(
    graphdef: Any, spec: ObjectiveSpec, obj_cfg: Any, rl: RLConfig, layout: Layout | None = None
) -> Callable[[TrainState, Rollout], tuple[TrainState, dict[str, Array]]]:
    """A jit'd ``update(state, batch) -> (state, metrics)``: ``epochs x minibatches`` steps.

    The optimizer is ``rl_optimizer(rl)`` (build the state with it). Metrics are means over the
    optimizer steps: ``loss``, ``grad_norm`` (before clipping), ``entropy`` (per token, nats),
    every ``aux`` scalar of the objective; plus ``grad_norm_max`` and ``loss_first`` /
    ``loss_last`` (first and last optimizer step). The state is donated; its key is split once
    per call (for the minibatch permutations).
    """
    return sharded_partial(
        _update,
        layout,
        ("model", "batch"),
        ("model", "replicated"),
        donate_argnums=(0,),
        graphdef=graphdef,
        spec=spec,
        obj_cfg=obj_cfg,
        rl=rl,
        total_updates=rl_total_updates(rl),
    )


def make_rl_step_fn(
    graphdef: Any,
    task: Any,
    spec: ObjectiveSpec,
    obj_cfg: Any,
    rl: RLConfig,
    reference: PyTree,
    data_key: Array,
    *,
    kl_every: int = 0,
    nan_at_step: int = -1,
    layout: Layout | None = None,
) -> Callable[[TrainState, int], tuple[TrainState, dict[str, float]]]:
    """Host step ``fn(state, i) -> (state, host metrics)`` of one RL step (rollout + update).

    The rollout key of step ``i`` is ``fold_in(data_key, i)`` and the update consumes
    ``state.key``, so a resumed run replays the same steps. The reference is scored every step
    when the objective has a KL term (``obj_cfg.beta > 0``) and every ``kl_every`` steps for the
    ``kl_ref`` metric otherwise. ``nan_at_step`` (a test hook) multiplies the advantages of that
    step by NaN. Timings: ``rollout_time``, ``update_time`` (seconds), ``tokens_per_s`` (completion
    tokens sampled per second of the whole step), ``sample_tokens_per_s`` (the same per second of
    rollout) and ``update_tokens_per_s`` (sequence tokens through forward + backward per second
    of update: B x (prompt + N) x epochs).
    """
    # Only the PPO-clip family has a KL term; the other objectives' configs have no beta.
    needs_ref = float(getattr(obj_cfg, "beta", 0.0)) > 0.0
    adv_cfg = AdvantageConfig(estimator=rl.advantage or spec.advantage)
    rollout = make_rollout(
        graphdef, task, rl, rollout_sampling_config(task, rl), adv_cfg, layout=layout
    )
    ref_scorer = make_reference_scorer(graphdef, layout=layout)
    update = make_update(graphdef, spec, obj_cfg, rl, layout=layout)
    # Tokens through the update's forward+backward passes: B sequences x (prompt + completion)
    # x epochs (padding included: it is computed).
    update_tokens = (
        rl.prompts_per_step * rl.group_size * (task.prompt_len + task.max_new_tokens) * rl.epochs
    )

    def fn(state: TrainState, i: int):
        t0 = time.perf_counter()
        batch, metrics = rollout(state.params, jax.random.fold_in(data_key, i))
        if needs_ref or (kl_every > 0 and i % kl_every == 0):
            batch, kl_metrics = ref_scorer(reference, batch)
            metrics.update(kl_metrics)
        if not needs_ref:
            batch = batch._replace(logp_ref=None)  # keep the update's input structure fixed
        if i == nan_at_step:
            batch = batch._replace(advantages=batch.advantages * jnp.nan)
        jax.block_until_ready(batch)
        t1 = time.perf_counter()
        state, update_metrics = update(state, batch)
        host = to_host({**metrics, **update_metrics})
        t2 = time.perf_counter()
        host["rollout_time"] = t1 - t0
        host["update_time"] = t2 - t1
        host["tokens_per_s"] = host["gen_tokens"] / max(t2 - t0, 1e-9)
        host["sample_tokens_per_s"] = host["gen_tokens"] / max(t1 - t0, 1e-9)
        host["update_tokens_per_s"] = update_tokens / max(t2 - t1, 1e-9)
        return state, host

    return fn
