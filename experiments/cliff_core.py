"""The policy-cliff experiment as pure JAX: one compiled program trains every (seed, ε) run.

Question (Xu, "The Policy Cliff", arXiv 2507.20150, Prop. 2.9/2.10 and 4.7): how far does the
policy that RL training produces move when the reward moves a little, ``r' = r + ε·δ``? Under
tied optima the theory predicts a jump that does not vanish as ε → 0; with entropy (or KL)
regularisation a Lipschitz response, ``TV ≤ ‖εδ‖∞ / (2α)`` for a soft-optimal bandit policy.

purejaxrl-style (Lu et al., github.com/luchris429/purejaxrl): ``make_cliff_train(...)`` returns
``train(init_params, key, eps, perturbation) -> (final_params, metrics)``, a pure function whose
RL loop is a ``lax.scan``; ``jax.vmap`` over ``(key, eps)`` runs every seed and ε of a job in one
compiled program. All runs start from the same (warm-started) parameters; runs of the same seed
share every PRNG key (prompt choice, sampling, minibatch order), so at ε = 0 they are identical
and at ε > 0 any difference is caused by the reward change (common random numbers).

One RL step (per run)::

    prompts  = fixed training prompt set, ``prompts_per_step`` of them chosen by the step key
    y ~ π_θ(·|x)  G times per prompt                  (cliffjax.sampling.sample, temperature T)
    r'  = r_task(x, y) + ε · δ(x, y)                   (δ: see :class:`Perturbation`)
    Â   = compute_advantages(r', G)                    (the objective's estimator)
    epochs × minibatches optimizer steps on
        L = spec.loss(PolicyBatch) − c_H · H̄(π_θ) [+ β · k3 KL to π_init if the objective has
        no KL term of its own]

Answers and exact enumeration. Completions are compared at the sequence level over the
*answer set* ``A_L``: every digit string of length 1..L followed by EOS (``Σ_k 10^k`` strings);
every other completion (no EOS within L+1 tokens, a non-digit, an empty answer) is one lumped
outcome "other". ``π(a|x) = Π_t π(a_t | x, a_<t)`` is computed exactly by scoring all
candidates, so for a prompt the policy is a distribution over ``|A_L| + 1`` outcomes; exact TV
and KL are computed on it (a coarsening of the full sequence distribution, so they are lower
bounds on the full-sequence TV/KL and equal to them when "other" has the same mass in both).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cliffjax.objectives import AdvantageConfig, PolicyBatch, compute_advantages, kl_divergence
from cliffjax.objectives.registry import ObjectiveSpec
from cliffjax.sampling import SamplingConfig, sample, score, score_with_entropy
from cliffjax.training.config import RLConfig
from cliffjax.training.state import make_optimizer

Array = jax.Array
PyTree = Any


# --------------------------------------------------------------------------------------------
# Answer set and enumeration
# --------------------------------------------------------------------------------------------


def num_answers(max_digits: int) -> int:
    """``|A_L| = Σ_{k=1..L} 10^k``: digit strings of length 1..L."""
    return sum(10**k for k in range(1, max_digits + 1))


def answer_candidates(
    max_digits: int, width: int, digit0_id: int, eos_id: int, pad_id: int
) -> tuple[Array, Array]:
    """All answers of ``A_L`` as completions: ``(tokens [A, width] int32, mask [A, width])``.

    Order: by length, then by value (``"0".."9"``, ``"00".."99"``, ...); answer ``i`` is the
    one :func:`answer_index` returns ``i`` for. The mask covers the digits and the EOS.
    """
    if width < max_digits + 1:
        raise ValueError(f"completion width {width} cannot hold {max_digits} digits plus EOS")
    rows, masks = [], []
    for k in range(1, max_digits + 1):  # host-side numpy: no compile for a constant table
        values = np.arange(10**k)
        digits = (values[:, None] // 10 ** np.arange(k - 1, -1, -1)[None, :]) % 10 + digit0_id
        row = np.full((10**k, width), pad_id, np.int32)
        row[:, :k] = digits
        row[:, k] = eos_id
        mask = np.zeros((10**k, width), np.int32)
        mask[:, : k + 1] = 1
        rows.append(row)
        masks.append(mask)
    return jnp.asarray(np.concatenate(rows)), jnp.asarray(np.concatenate(masks))


def answer_index(completions: Array, max_digits: int, digit0_id: int, eos_id: int) -> Array:
    """Index in ``A_L`` of each completion ``[B, N]``, or ``-1`` if it is not an answer.

    A completion is an answer iff its first EOS is at position ``k ∈ [1, L]`` and the ``k``
    tokens before it are digits. Its index is ``offset_k + value`` with
    ``offset_k = Σ_{j=1}^{k-1} 10^j`` (the answers of fewer digits come first).
    """
    _b, n = completions.shape
    is_eos = completions == eos_id
    has_eos = jnp.any(is_eos, axis=1)
    k = jnp.argmax(is_eos, axis=1)  # position of the first EOS
    d = completions - digit0_id
    is_digit = (d >= 0) & (d <= 9)
    pos = jnp.arange(n)[None, :]
    before = pos < k[:, None]
    digits_ok = jnp.all(is_digit | ~before, axis=1)
    ok = has_eos & (k >= 1) & (k <= max_digits) & digits_ok
    # value = Σ_{t<k} d_t 10^(k-1-t), computed with a per-row exponent.
    expo = jnp.clip(k[:, None] - 1 - pos, 0, max_digits)
    value = jnp.sum(jnp.where(before, jnp.clip(d, 0, 9) * (10**expo), 0), axis=1)
    offsets = jnp.asarray(
        [0] + [sum(10**j for j in range(1, kk)) for kk in range(1, max_digits + 1)], jnp.int32
    )
    idx = offsets[jnp.clip(k, 0, max_digits)] + value
    return jnp.where(ok, idx, -1).astype(jnp.int32)


def sequence_logprob(
    graphdef: Any, params: PyTree, prompts: Array, completions: Array, mask: Array
) -> Array:
    """``log π(y|x) = Σ_t mask_t · log π(y_t | x, y_<t)``, ``[B]`` float32."""
    logp = score(graphdef, params, prompts, completions)
    return jnp.sum(logp * mask.astype(logp.dtype), axis=1)


def answer_distribution(
    graphdef: Any, params: PyTree, prompts: Array, candidates: Array, cand_mask: Array
) -> Array:
    """Exact ``[E, A + 1]`` distribution over ``A_L`` ∪ {other} for each of ``E`` prompts.

    Column ``A`` is the lumped "other" outcome ``1 − Σ_a π(a|x)`` (clipped at 0 against
    float error).
    """
    e, a = prompts.shape[0], candidates.shape[0]
    pr = jnp.repeat(prompts, a, axis=0)
    cd = jnp.tile(candidates, (e, 1))
    cm = jnp.tile(cand_mask, (e, 1))
    logp = sequence_logprob(graphdef, params, pr, cd, cm).reshape(e, a)
    p = jnp.exp(logp)
    other = jnp.clip(1.0 - jnp.sum(p, axis=1, keepdims=True), 0.0, 1.0)
    return jnp.concatenate([p, other], axis=1)


def tv_distance(p: Array, q: Array) -> Array:
    """``TV(p, q) = ½ Σ_i |p_i − q_i|`` along the last axis."""
    return 0.5 * jnp.sum(jnp.abs(p - q), axis=-1)


def kl_categorical(p: Array, q: Array, floor: float = 1e-30) -> Array:
    """``KL(p ‖ q) = Σ_i p_i (log p_i − log q_i)`` along the last axis (0·log 0 = 0).

    ``q`` is floored at ``floor`` so an outcome with ``q_i`` underflowing to 0 gives a large
    finite value instead of ``inf``.
    """
    lp = jnp.log(jnp.maximum(p, floor))
    lq = jnp.log(jnp.maximum(q, floor))
    return jnp.sum(jnp.where(p > 0, p * (lp - lq), 0.0), axis=-1)


def sampled_distances(
    graphdef: Any,
    params_p: PyTree,
    params_q: PyTree,
    prompts: Array,
    key: Array,
    sampling: SamplingConfig,
    n_samples: int,
) -> tuple[Array, Array]:
    """Monte-Carlo ``(TV, KL)`` of ``p = π(params_p)`` vs ``q = π(params_q)``, ``[E]`` each.

    With ``y_1..y_M ~ p(·|x)`` (full sequences, any length) and exact sequence log-probs:
    ``TV(p, q) = E_p[(1 − q(y)/p(y))_+]`` and ``KL(p ‖ q) = E_p[log p(y) − log q(y)]`` (both
    unbiased; the TV identity is ``Σ_y (p − q)_+ = Σ_y p (1 − q/p)_+``). ``sampling`` must be
    the policy itself (temperature 1, no top-k/top-p) for the estimate to be of π.
    """
    e = prompts.shape[0]
    pr = jnp.repeat(prompts, n_samples, axis=0)
    out = sample(graphdef, params_p, pr, key, sampling)
    mask = out.completion_mask
    lp = sequence_logprob(graphdef, params_p, pr, out.completion, mask)
    lq = sequence_logprob(graphdef, params_q, pr, out.completion, mask)
    tv = jnp.maximum(0.0, -jnp.expm1(jnp.clip(lq - lp, -60.0, 60.0)))
    return tv.reshape(e, n_samples).mean(1), (lp - lq).reshape(e, n_samples).mean(1)


# --------------------------------------------------------------------------------------------
# Reward perturbations
# --------------------------------------------------------------------------------------------

PERTURBATIONS = ("random", "ties", "reweight")


class Perturbation(NamedTuple):
    """``δ(x, y) = table[x, answer(y)] · 1[y ∈ A_L] + Σ_k weights[k] · c_k(x, y)``.

    Attributes:
      table: ``[n_prompts, A]`` float32 per-(training prompt, answer) bonus (zeros for
        ``reweight``).
      weights: ``[K]`` float32 direction over the task's reward components, in the sorted order
        of their names (zeros unless ``reweight``).
    """

    table: Array
    weights: Array


def perturbation_value(
    pert: Perturbation,
    prompt_idx: Array,
    answer_idx: Array,
    components: dict[str, Array],
) -> Array:
    """``δ[B]`` for completions with answer indices ``answer_idx[B]`` (−1: not an answer)."""
    bonus = pert.table[prompt_idx, jnp.maximum(answer_idx, 0)]
    delta = jnp.where(answer_idx >= 0, bonus, 0.0)
    names = sorted(components)
    if pert.weights.shape[0]:
        comps = jnp.stack([components[n].astype(jnp.float32) for n in names], axis=1)
        delta = delta + comps @ pert.weights
    return delta.astype(jnp.float32)


def make_perturbation(
    kind: str,
    key: Array,
    answer_rewards: Array,
    component_names: tuple[str, ...],
    reweight: tuple[float, ...] = (),
) -> Perturbation:
    """Build δ for ``n_prompts`` training prompts from their exact answer rewards ``[n, A]``.

    * ``random``: one bonus ``u_a ~ U[−1, 1]`` per answer string, the same for every prompt
      (``‖δ‖∞ ≤ 1``).
    * ``ties``: for each prompt, bonus 1 on one correct answer (drawn uniformly among the
      answers of maximal reward with ``key``) and 0 elsewhere — the tie-breaker of Prop. 2.9 /
      3.2; with ``m`` tied optima the unregularised optimum jumps from the tie set to that one
      answer for any ε > 0.
    * ``reweight``: ``δ = Σ_k d_k c_k`` over the reward components with direction ``d`` =
      ``reweight`` (one weight per component, in sorted name order): the multi-reward weight
      change ``w → w + ε d`` of Prop. 4.6 / the weight cliff.
    """
    n, a = answer_rewards.shape
    zeros_w = jnp.zeros((0,), jnp.float32)
    if kind == "random":
        table = jnp.broadcast_to(jax.random.uniform(key, (a,), minval=-1.0, maxval=1.0), (n, a))
        return Perturbation(jnp.asarray(table, jnp.float32), zeros_w)
    if kind == "ties":
        best = answer_rewards >= jnp.max(answer_rewards, axis=1, keepdims=True) - 1e-6
        # Uniform choice among the maximisers: the argmax of masked Gumbel noise.
        g = jax.random.gumbel(key, (n, a))
        chosen = jnp.argmax(jnp.where(best, g, -jnp.inf), axis=1)
        return Perturbation(jax.nn.one_hot(chosen, a, dtype=jnp.float32), zeros_w)
    if kind == "reweight":
        if len(reweight) != len(component_names):
            raise ValueError(
                f"sweep.reweight must give one weight per reward component {list(component_names)} "
                f"(sorted), got {list(reweight)}"
            )
        return Perturbation(jnp.zeros((n, a), jnp.float32), jnp.asarray(reweight, jnp.float32))
    raise ValueError(f"perturbation must be one of {PERTURBATIONS}, got {kind!r}")


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """Static inputs of :func:`make_cliff_train` (everything except the swept arrays).

    Attributes:
      graphdef: the policy's static structure.
      task: a ``cliffjax.tasks`` task (its ``reward`` is called inside the compiled program).
      spec: the registered objective.
      obj_cfg: its config (KL coefficient already set).
      rl: RL loop settings (steps, prompts per step, G, epochs, minibatches, optimizer).
      entropy_coef: c_H, weight of the mean token entropy bonus.
      kl_beta: β of the k3 KL-to-init term added here when the objective has no KL field.
      max_digits: L of the answer set (for δ lookups).
    """

    graphdef: Any
    task: Any
    spec: ObjectiveSpec
    obj_cfg: Any
    rl: RLConfig
    entropy_coef: float
    kl_beta: float
    max_digits: int


def objective_has_kl(obj_cfg: Any) -> bool:
    """Whether the objective config carries its own KL coefficient ``beta``."""
    return any(f.name == "beta" for f in dataclasses.fields(obj_cfg))


def uses_reference(ts: TrainSpec) -> bool:
    """Whether the update needs the warm-start policy's log-probs (a KL term is on)."""
    return ts.kl_beta > 0 or float(getattr(ts.obj_cfg, "beta", 0.0) or 0.0) > 0


def sampling_config(task: Any, rl: RLConfig) -> SamplingConfig:
    """The rollout sampler settings of ``rl`` for ``task``."""
    tok = task.tokenizer
    return SamplingConfig(
        max_new_tokens=task.max_new_tokens,
        temperature=rl.temperature,
        top_k=rl.top_k,
        top_p=rl.top_p,
        eos_id=tok.eos_id,
        pad_id=tok.pad_id,
    )


class RolloutRecord(NamedTuple):
    """One step's rollout, as recorded for replay (``B = prompts_per_step × G``).

    Attributes:
      prompt_idx: ``[B]`` int32 index into the training prompt set.
      completions: ``[B, N]`` int32.
      mask: ``[B, N]`` float32 completion mask.
      logp_old: ``[B, N]`` float32 log-probs of the behaviour policy.
      rewards: ``[B]`` float32 task rewards (unperturbed).
      delta: ``[B]`` float32 perturbation δ of each completion.
    """

    prompt_idx: Array
    completions: Array
    mask: Array
    logp_old: Array
    rewards: Array
    delta: Array


def _masked_mean(x: Array, m: Array) -> Array:
    return jnp.sum(x * m) / jnp.maximum(jnp.sum(m), 1.0)


def make_update_fn(ts: TrainSpec, tx: optax.GradientTransformation):
    """``update(params, opt_state, prompts, rec, adv, logp_ref, key, entropy_coef)``.

    Returns ``(params, opt_state, metrics)``. ``entropy_coef`` is an argument (not a compiled
    constant) so that jobs differing only in it share one compiled program.

    ``epochs × minibatches`` optimizer steps on one rollout (minibatch order from ``key``).
    Loss per minibatch: ``loss_sum/denominator`` of the objective, minus ``c_H`` times the
    masked mean token entropy, plus ``β · mean k3(π_θ, π_init)`` when the objective has no KL
    field and ``β > 0``.
    """
    rl = ts.rl
    b = rl.prompts_per_step * rl.group_size
    n_mb = rl.minibatches
    own_kl = ts.kl_beta > 0 and not objective_has_kl(ts.obj_cfg)

    def loss_fn(params, prompts, rec: RolloutRecord, adv, logp_ref, entropy_coef):
        logp, ent = score_with_entropy(ts.graphdef, params, prompts, rec.completions)
        batch = PolicyBatch(logp, rec.logp_old, rec.mask, adv, logp_ref, rec.rewards)
        loss_sum, denom, _aux = ts.spec.loss(batch, ts.obj_cfg)
        loss = loss_sum / jnp.maximum(denom, 1e-8)
        entropy = _masked_mean(ent, rec.mask)
        total = loss - entropy_coef * entropy
        if own_kl:
            total = total + ts.kl_beta * _masked_mean(kl_divergence(logp, logp_ref, "k3"), rec.mask)
        return total, {"loss": loss, "entropy": jax.lax.stop_gradient(entropy)}

    grad_fn = jax.grad(loss_fn, has_aux=True)

    def update(
        params, opt_state, prompts_all, rec: RolloutRecord, adv, logp_ref, key, entropy_coef
    ):
        perms = jax.vmap(lambda k: jax.random.permutation(k, b))(jax.random.split(key, rl.epochs))
        perms = perms.reshape(rl.epochs * n_mb, b // n_mb)

        def body(carry, idx):
            params, opt_state = carry
            sub = jax.tree.map(lambda x: x[idx], rec)
            ref = None if logp_ref is None else logp_ref[idx]
            grads, aux = grad_fn(
                params, prompts_all[sub.prompt_idx], sub, adv[idx], ref, entropy_coef
            )
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            aux["grad_norm"] = optax.tree.norm(grads)
            return (params, opt_state), aux

        (params, opt_state), aux = jax.lax.scan(body, (params, opt_state), perms)
        return params, opt_state, jax.tree.map(jnp.mean, aux)

    return update


def total_updates(rl: RLConfig) -> int:
    """Optimizer steps of a run (schedules count these)."""
    return rl.steps * rl.epochs * rl.minibatches


def advantage_config(ts: TrainSpec) -> AdvantageConfig:
    """The advantage estimator: ``rl.advantage`` or the objective's default."""
    return AdvantageConfig(estimator=ts.rl.advantage or ts.spec.advantage or "group_std")


def make_cliff_train(
    ts: TrainSpec, train_prompts: Array, train_meta: dict[str, Array]
) -> Callable[..., tuple[PyTree, dict[str, Array]]]:
    """``train(init_params, key, eps, pert, entropy_coef=None, record=False)``.

    Returns ``(final_params, metrics)``. Pure and jit/vmap-able in ``(init_params, key, eps,
    pert, entropy_coef)``; ``entropy_coef=None`` uses ``ts.entropy_coef`` as a constant. ``metrics`` are per-step
    ``[steps]`` arrays: ``reward`` (unperturbed task reward of the rollouts), ``reward_pert``,
    ``entropy``, ``loss``, ``grad_norm``, ``zero_variance_frac``; with ``record=True`` also
    the ``RolloutRecord`` of every step under ``"rollouts"`` (``[steps, B, ...]``).
    """
    rl = ts.rl
    g, p = rl.group_size, rl.prompts_per_step
    n_train = train_prompts.shape[0]
    if p > n_train:
        raise ValueError(f"prompts_per_step={p} exceeds the training prompt set ({n_train})")
    sampling = sampling_config(ts.task, rl)
    policy_logp = rl.temperature == 1.0 and rl.top_k == 0 and rl.top_p == 1.0
    needs_ref = uses_reference(ts)
    tx = make_optimizer(rl.optim, total_updates(rl))
    update = make_update_fn(ts, tx)
    adv_cfg = advantage_config(ts)
    tok = ts.task.tokenizer

    def rollout(params, key, pert):
        k_prompt, k_sample = jax.random.split(key)
        if p == n_train:
            idx = jnp.arange(n_train, dtype=jnp.int32)
        else:
            idx = jax.random.permutation(k_prompt, n_train)[:p].astype(jnp.int32)
        pidx = jnp.repeat(idx, g)
        prompts = train_prompts[pidx]
        meta = jax.tree.map(lambda x: x[pidx], train_meta)
        out = sample(ts.graphdef, params, prompts, k_sample, sampling)
        mask = out.completion_mask.astype(jnp.float32)
        rewards, comps = ts.task.reward(out.completion, out.completion_mask, meta)
        aidx = answer_index(out.completion, ts.max_digits, tok.digit0_id, tok.eos_id)
        delta = perturbation_value(pert, pidx, aidx, comps)
        logp_old = out.logp if policy_logp else score(ts.graphdef, params, prompts, out.completion)
        rec = RolloutRecord(
            pidx, out.completion, mask, logp_old * mask, rewards.astype(jnp.float32), delta
        )
        return rec

    def step_on(params, opt_state, init_params, rec, eps, key, entropy_coef):
        r_pert = rec.rewards + eps * rec.delta
        adv, adv_aux = compute_advantages(r_pert, g, adv_cfg)
        logp_ref = (
            score(ts.graphdef, init_params, train_prompts[rec.prompt_idx], rec.completions)
            if needs_ref
            else None
        )
        # The objective sees the perturbed reward r' (DISPO's correct_by="reward" reads it).
        seen = rec._replace(rewards=r_pert)
        params, opt_state, aux = update(
            params, opt_state, train_prompts, seen, adv, logp_ref, key, entropy_coef
        )
        metrics = {
            "reward": jnp.mean(rec.rewards),
            "reward_pert": jnp.mean(r_pert),
            "zero_variance_frac": adv_aux["zero_variance_frac"],
            **aux,
        }
        return params, opt_state, metrics

    def train(init_params, key, eps, pert, entropy_coef=None, record: bool = False):
        eps = jnp.asarray(eps, jnp.float32)
        c_h = ts.entropy_coef if entropy_coef is None else entropy_coef

        def body(carry, k):
            params, opt_state = carry
            k_roll, k_upd = jax.random.split(k)
            rec = rollout(params, k_roll, pert)
            params, opt_state, metrics = step_on(
                params, opt_state, init_params, rec, eps, k_upd, c_h
            )
            if record:
                metrics["rollouts"] = rec
            return (params, opt_state), metrics

        opt_state = tx.init(init_params)
        (params, _), metrics = jax.lax.scan(
            body, (init_params, opt_state), jax.random.split(key, rl.steps)
        )
        return params, metrics

    return train


def make_replay_train(
    ts: TrainSpec, train_prompts: Array
) -> Callable[[PyTree, RolloutRecord, Array, Array], tuple[PyTree, dict[str, Array]]]:
    """``replay(init_params, rollouts[steps, ...], eps, key, entropy_coef=None)``.

    Returns ``(final_params, metrics)``.

    With the recording run's key, each step's minibatch order is the recorded run's, so
    replaying the recording objective at the recording ε reproduces that run exactly.

    Trains on recorded rollouts instead of sampling: step ``t`` uses exactly the completions,
    masks, behaviour log-probs and rewards recorded at step ``t`` (advantages recomputed with
    this objective's estimator from ``r + ε δ``), so several objectives are compared on
    identical data. Off-policy by construction once the replaying policy drifts from the
    recorded one: the ratios ``π_θ/π_old`` then carry the correction each objective applies.
    """
    rl = ts.rl
    g = rl.group_size
    needs_ref = uses_reference(ts)
    tx = make_optimizer(rl.optim, total_updates(rl))
    update = make_update_fn(ts, tx)
    adv_cfg = advantage_config(ts)

    def replay(init_params, rollouts: RolloutRecord, eps, key, entropy_coef=None):
        c_h = ts.entropy_coef if entropy_coef is None else entropy_coef

        def body(carry, inp):
            params, opt_state = carry
            rec, k = inp
            _, k = jax.random.split(k)  # the update key of the recorded run's step
            r_pert = rec.rewards + eps * rec.delta
            adv, _adv_aux = compute_advantages(r_pert, g, adv_cfg)
            logp_ref = None
            if needs_ref:
                logp_ref = score(
                    ts.graphdef, init_params, train_prompts[rec.prompt_idx], rec.completions
                )
            seen = rec._replace(rewards=r_pert)
            params, opt_state, aux = update(
                params, opt_state, train_prompts, seen, adv, logp_ref, k, c_h
            )
            return (params, opt_state), {"reward": jnp.mean(rec.rewards), **aux}

        n_steps = rollouts.rewards.shape[0]
        keys = jax.random.split(key, n_steps)
        (params, _), metrics = jax.lax.scan(
            body, (init_params, tx.init(init_params)), (rollouts, keys)
        )
        return params, metrics

    return replay
