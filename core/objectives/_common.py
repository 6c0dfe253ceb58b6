"""Helpers shared by the policy objectives (not part of the public API)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from cliffjax.objectives.aggregation import aggregate, finalize_loss
from cliffjax.objectives.kl import kl_divergence
from cliffjax.objectives.types import PolicyBatch

Array = jax.Array


def compute_dtype(x: Array) -> jnp.dtype:
    """float32 for half-precision inputs (bf16/f16), else the input's float dtype."""
    return jnp.promote_types(x.dtype, jnp.float32)


def check_policy_batch(batch: PolicyBatch) -> None:
    """Shape checks at the boundary (static, so they run once under jit)."""
    shape = batch.logp.shape
    if len(shape) != 2:
        raise ValueError(f"logp must be [B, T], got shape {shape}")
    for name in ("logp_old", "mask", "logp_ref"):
        x = getattr(batch, name)
        if x is not None and x.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {x.shape}")
    adv = batch.advantages
    if adv.shape not in ((shape[0],), shape):
        raise ValueError(f"advantages must be [B]={shape[0]} or [B, T]={shape}, got {adv.shape}")
    if batch.rewards is not None and batch.rewards.shape != (shape[0],):
        raise ValueError(f"rewards must be [B]={shape[0]}, got {batch.rewards.shape}")


def prepare(batch: PolicyBatch, clamp: float) -> dict[str, Array]:
    """Cast to the compute dtype, build mask, token advantages and the clamped log-ratio.

    Masked positions are replaced *before* any ``exp`` so they cannot produce inf/NaN, and
    ``jnp.where`` makes their cotangent exactly 0.
    """
    check_policy_batch(batch)
    dt = compute_dtype(batch.logp)
    valid = batch.mask != 0
    logp = batch.logp.astype(dt)
    # logp_old and the advantages are data: callers pass values that do not depend on the
    # parameters they differentiate (on-policy: jax.lax.stop_gradient(logp)). No stop_gradient
    # here, so a forward-mode tangent of the data (d/dε of a training run) flows through.
    logp_old = batch.logp_old.astype(dt)
    adv = batch.advantages.astype(dt)
    if adv.ndim == 1:
        adv = adv[:, None]
    adv = jnp.where(valid, jnp.broadcast_to(adv, logp.shape), 0.0)
    raw_log_ratio = jnp.where(valid, logp - logp_old, 0.0)
    log_ratio = jnp.clip(raw_log_ratio, -clamp, clamp)
    return {
        "dtype": dt,
        "valid": valid,
        "m": valid.astype(dt),
        "logp": jnp.where(valid, logp, 0.0),
        "adv": adv,
        "log_ratio": log_ratio,
        "raw_log_ratio": raw_log_ratio,
        "ratio": jnp.exp(log_ratio),
    }


def masked_mean(x: Array, m: Array) -> Array:
    """Mean of ``x`` over positions where ``m`` is 1 (0 if none)."""
    n = jnp.sum(m)
    return jnp.sum(jnp.where(m > 0, x, 0.0)) / jnp.maximum(n, 1.0)


def masked_std(x: Array, m: Array) -> Array:
    """Population std of ``x`` over valid positions (0 if none)."""
    mu = masked_mean(x, m)
    return jnp.sqrt(masked_mean((x - mu) ** 2, m))


def masked_min(x: Array, m: Array) -> Array:
    """Minimum over valid positions (0 if none)."""
    big = jnp.finfo(x.dtype).max
    v = jnp.min(jnp.where(m > 0, x, big))
    return jnp.where(jnp.sum(m) > 0, v, 0.0)


def masked_max(x: Array, m: Array) -> Array:
    """Maximum over valid positions (0 if none)."""
    big = jnp.finfo(x.dtype).max
    v = jnp.max(jnp.where(m > 0, x, -big))
    return jnp.where(jnp.sum(m) > 0, v, 0.0)


def ratio_stats(p: dict[str, Array]) -> dict[str, Array]:
    """ratio mean/min/max, mean |log-ratio|, and token-weighted advantage stats.

    The token count is reduced once and shared by the means; the masked sums are sibling
    reductions over the same ``[B, T]`` shape, which XLA fuses into one pass.
    """
    m, r = p["m"], jax.lax.stop_gradient(p["ratio"])
    a = p["adv"]
    valid = m > 0
    n = jnp.sum(m)
    den = jnp.maximum(n, 1.0)
    mean = lambda x: jnp.sum(jnp.where(valid, x, 0.0)) / den
    adv_mean = mean(a)
    big = jnp.finfo(r.dtype).max
    some = n > 0
    return {
        "ratio_mean": mean(r),
        "ratio_min": jnp.where(some, jnp.min(jnp.where(valid, r, big)), 0.0),
        "ratio_max": jnp.where(some, jnp.max(jnp.where(valid, r, -big)), 0.0),
        "log_ratio_abs_mean": mean(jnp.abs(jax.lax.stop_gradient(p["log_ratio"]))),
        "adv_mean": adv_mean,
        "adv_std": jnp.sqrt(mean((a - adv_mean) ** 2)),
        "valid_tokens": n,
    }


def kl_term(batch: PolicyBatch, p: dict[str, Array], beta: float, estimator: str, clamp: float):
    """``(per-token KL [B,T] masked to 0, or None)``; raises if β > 0 without ``logp_ref``."""
    if beta == 0.0:
        return None
    if batch.logp_ref is None:
        raise ValueError("beta > 0 needs batch.logp_ref (set beta=0.0 to run without a reference)")
    dt, valid = p["dtype"], p["valid"]
    logp = batch.logp.astype(dt)
    # Neutralise masked positions before any exp: logp := logp_ref there, so d = 0.
    ref = batch.logp_ref.astype(dt)
    logp_safe = jnp.where(valid, logp, jax.lax.stop_gradient(ref))
    old = None if batch.logp_old is None else batch.logp_old.astype(dt)
    if old is not None:
        old = jnp.where(valid, old, jax.lax.stop_gradient(ref))
    kl = kl_divergence(logp_safe, ref, estimator, logp_old=old, clamp=clamp)
    return jnp.where(valid, kl, 0.0)


def finish(
    pg_per_token: Array,
    kl_per_token: Array | None,
    beta: float,
    p: dict[str, Array],
    mask: Array,
    aggregation: str,
    norm_constant: float | None,
    aux: dict[str, Array],
    with_aux: bool = True,
) -> tuple[Array, Array, dict[str, Array]]:
    """Add ``β·KL``, aggregate to ``(sum, denominator)`` and add the aggregated parts to aux.

    With ``with_aux=False`` the aux dict stays empty and none of its reductions is built;
    ``(loss_sum, denominator)`` come from the same operations either way.
    """
    aux = dict(aux)
    if with_aux:
        pg_sum, denom = aggregate(pg_per_token, mask, aggregation, norm_constant)
        aux["pg_loss"] = finalize_loss(jax.lax.stop_gradient(pg_sum), denom)
    total = pg_per_token
    if kl_per_token is not None:
        if with_aux:
            kl_sum, _ = aggregate(kl_per_token, mask, aggregation, norm_constant)
            aux["kl_loss"] = finalize_loss(jax.lax.stop_gradient(kl_sum), denom)
            aux["kl_mean"] = masked_mean(jax.lax.stop_gradient(kl_per_token), p["m"])
        total = pg_per_token + beta * kl_per_token
    loss_sum, denom = aggregate(total, mask, aggregation, norm_constant)
    return loss_sum, denom, aux


def check_common(cfg) -> None:
    """Validate ``beta``, ``kl_estimator``, ``aggregation``, ``norm_constant``, ``log_ratio_clamp``."""
    from cliffjax.objectives.aggregation import check_mode
    from cliffjax.objectives.kl import check_estimator

    if not cfg.beta >= 0:
        raise ValueError(f"beta must be >= 0, got {cfg.beta!r}")
    check_estimator(cfg.kl_estimator)
    check_mode(cfg.aggregation)
    if cfg.norm_constant is not None and not cfg.norm_constant > 0:
        raise ValueError(f"norm_constant must be > 0 or None, got {cfg.norm_constant!r}")
    if not cfg.log_ratio_clamp > 0:
        raise ValueError(f"log_ratio_clamp must be > 0, got {cfg.log_ratio_clamp!r}")
