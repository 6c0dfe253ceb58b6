"""Distances between policies: exact on categorical distributions, Monte Carlo on sequences."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from cliffjax.analysis.answers import sequence_logprob
from cliffjax.sampling import SamplingConfig, sample

Array = jax.Array
PyTree = Any


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
