"""Per-token KL estimators between the policy and the frozen reference.

With ``d = log π_ref − log π_θ`` (per sampled token, clamped to ±``clamp`` before ``exp`` so
that log-ratios of ±50 stay finite) and ``r = π_θ/π_old``:

* ``k1 = −d`` (= log π_θ − log π_ref). Unbiased *value* estimate of KL(π_θ‖π_ref) under
  on-policy samples, but its gradient ``∇log π_θ`` has expectation 0: use it **in the reward**
  (PPO-RLHF style shaping), not in the loss. tunix ``kl``, verl ``kl``/``k1``.
* ``k2 = d²/2``. Biased value, but as a **loss** term its gradient ``(log π_θ − log π_ref)∇log π_θ``
  is, on-policy, exactly the gradient of KL(π_θ‖π_ref). tunix ``mse_kl``, verl ``mse``/``k2``.
* ``k3 = e^d − d − 1`` (Schulman's estimator; GRPO, arXiv 2402.03300 eq. 4). Unbiased,
  non-negative, low-variance *value* estimate (fine in the reward). In the loss its gradient
  ``(1 − π_ref/π_θ)∇log π_θ`` has expectation equal to the gradient of the *forward*
  KL(π_ref‖π_θ), not the reverse one; that is what GRPO uses. tunix/verl ``low_var_kl``, TRL.
* ``k3_ratio = r · k3`` with ``r`` differentiable (DeepSeek-V3.2's importance-corrected
  estimator, TRL ``use_bias_correction_kl=True``). Its gradient is
  ``r (log π_θ − log π_ref) ∇log π_θ``: the reverse-KL gradient, unbiased also off-policy.
  Needs ``logp_old``. For the loss.

``logp_ref`` and ``logp_old`` are constants (``stop_gradient``). Outputs are not masked;
objectives mask them.

Dtype: the terms are computed in at least float32 (``promote_types(dtype, float32)``), so
float16/bfloat16 inputs are upcast first and the result is float32 (float64 stays float64).
In float16, ``e^20`` would overflow; the ±``clamp`` promise of finite values holds only
because of the upcast.
"""

from __future__ import annotations

from typing import Final

import jax
import jax.numpy as jnp

Array = jax.Array

KL_ESTIMATORS: Final = ("k1", "k2", "k3", "k3_ratio")
#: Where each estimator may be used: "reward" (as a value) and/or "loss" (as a gradient).
KL_USAGE: Final = {
    "k1": ("reward",),
    "k2": ("loss",),
    "k3": ("reward", "loss"),
    "k3_ratio": ("loss",),
}


def check_estimator(name: str, field: str = "kl_estimator") -> None:
    """Raise ``ValueError`` naming ``field`` if ``name`` is not a KL estimator."""
    if name not in KL_ESTIMATORS:
        raise ValueError(f"{field} must be one of {KL_ESTIMATORS}, got {name!r}")


def kl_divergence(
    logp: Array,
    logp_ref: Array,
    estimator: str,
    logp_old: Array | None = None,
    clamp: float = 20.0,
) -> Array:
    """Per-token KL estimate ``[B, T]`` (see the module docstring for formulas and usage).

    Args:
      logp: ``[B, T]`` log π_θ of the sampled tokens (differentiable).
      logp_ref: ``[B, T]`` log π_ref (constant).
      estimator: ``"k1" | "k2" | "k3" | "k3_ratio"``.
      logp_old: ``[B, T]`` log π_old, required by ``k3_ratio`` (constant).
      clamp: bound on ``|d|`` and on the log-ratio before ``exp`` (tunix/verl use 20).

    Returns:
      ``[B, T]`` in ``promote_types(logp.dtype, float32)`` (float32 for f16/bf16 inputs).
    """
    check_estimator(estimator, "estimator")
    dt = jnp.promote_types(jnp.result_type(logp), jnp.float32)
    logp = jnp.asarray(logp).astype(dt)
    ref = jax.lax.stop_gradient(jnp.asarray(logp_ref).astype(dt))
    d = jnp.clip(ref - logp, -clamp, clamp)
    if estimator == "k1":
        return -d
    if estimator == "k2":
        return 0.5 * d * d
    k3 = jnp.expm1(d) - d  # e^d - 1 - d, accurate for small d
    if estimator == "k3":
        return k3
    if logp_old is None:
        raise ValueError("estimator 'k3_ratio' needs logp_old")
    old = jax.lax.stop_gradient(jnp.asarray(logp_old).astype(dt))
    log_ratio = jnp.clip(logp - old, -clamp, clamp)
    return jnp.exp(log_ratio) * k3
