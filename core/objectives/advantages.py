"""Group-relative outcome advantages (GRPO family).

Rewards ``R[B]`` come in contiguous groups of ``G`` completions of the same prompt
(``B = P·G``, reshaped to ``[P, G]``). Estimators:

* ``group_std`` (GRPO, arXiv 2402.03300 §4.1.2): ``Â_i = (R_i − mean_g R) / (std_g R + eps)``.
  The paper fixes neither the std convention nor ``eps``; we default to the Bessel-corrected std
  (``ddof=1``, as TRL, verl and tunix) and ``eps=1e-6`` (tunix, verl; TRL uses ``1e-4``). Both are
  config fields. Test vector: rewards ``[1,0,0,1]`` give ``±0.866`` with ``ddof=1`` and ``±1.0``
  with ``ddof=0`` (up to eps).
* ``group_mean`` (Dr. GRPO, arXiv 2503.20783 §3.2): ``Â_i = R_i − mean_g R`` (no std division).
* ``rloo`` (leave-one-out baseline, Ahmadian et al. 2024 / Kool et al. 2019):
  ``Â_i = R_i − (1/(G−1)) Σ_{j≠i} R_j = G/(G−1) · (R_i − mean_g R)``. Needs ``G ≥ 2``.

Zero-variance groups (all rewards equal) get ``Â = 0`` exactly in every estimator (the centred
reward is set to 0 there, so floating-point residue of the mean does not leak through the
``1/eps`` scale). They are **reported**, not dropped: ``aux["zero_variance_frac"]`` is the
fraction of such groups and ``aux["zero_variance_mask"]`` (``[B]`` bool) marks their sequences,
so a trainer can filter them (DAPO's dynamic sampling) or log them.
"""

from __future__ import annotations

import dataclasses
from typing import Final

import jax
import jax.numpy as jnp

Array = jax.Array

ADVANTAGE_ESTIMATORS: Final = ("group_std", "group_mean", "rloo")


@dataclasses.dataclass(frozen=True)
class AdvantageConfig:
    """Configuration of :func:`compute_advantages`.

    Attributes:
      estimator: ``"group_std"`` (GRPO), ``"group_mean"`` (Dr. GRPO) or ``"rloo"``.
      ddof: delta degrees of freedom of the group std (``group_std`` only): 1 = Bessel-corrected
        sample std (TRL/verl/tunix), 0 = population std.
      eps: added to the std before dividing (``group_std`` only).
    """

    estimator: str = "group_std"
    ddof: int = 1
    eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.estimator not in ADVANTAGE_ESTIMATORS:
            raise ValueError(
                f"estimator must be one of {ADVANTAGE_ESTIMATORS}, got {self.estimator!r}"
            )
        if self.ddof not in (0, 1):
            raise ValueError(f"ddof must be 0 or 1, got {self.ddof!r}")
        if not self.eps >= 0:
            raise ValueError(f"eps must be >= 0, got {self.eps!r}")


def std_safe(x: Array) -> Array:
    """``jnp.std(x)`` (population) whose forward-mode tangent is finite when ``x`` is constant
    (then 0; ``jnp.std`` gives NaN there because sqrt'(0) is infinite)."""
    var = jnp.var(x)
    return jnp.where(var > 0, jnp.sqrt(jnp.where(var > 0, var, 1.0)), 0.0)


def compute_advantages(
    rewards: Array, group_size: int, cfg: AdvantageConfig | None = None
) -> tuple[Array, dict[str, Array]]:
    """Outcome advantages ``Â[B]`` from rewards ``R[B]`` in contiguous groups of ``group_size``.

    Returns ``(adv[B], aux)``; ``aux`` holds scalars ``zero_variance_frac``, ``reward_mean``,
    ``reward_std``, ``adv_mean``, ``adv_std``, ``adv_abs_max`` and the ``[B]`` bool
    ``zero_variance_mask``. Advantages are constants for every objective (no gradient is meant to
    flow into rewards); the output has the rewards' floating dtype (at least float32).
    """
    cfg = AdvantageConfig() if cfg is None else cfg
    if rewards.ndim != 1:
        raise ValueError(f"rewards must be [B], got shape {rewards.shape}")
    g = int(group_size)
    if g < 1 or rewards.shape[0] % g != 0:
        raise ValueError(
            f"group_size must be >= 1 and divide B={rewards.shape[0]}, got {group_size!r}"
        )
    if cfg.estimator == "rloo" and g < 2:
        raise ValueError("estimator 'rloo' needs group_size >= 2")
    dtype = jnp.promote_types(rewards.dtype, jnp.float32)
    # Rewards are data (no stop_gradient: a forward-mode tangent d/dε of r + ε·δ flows).
    r = rewards.astype(dtype).reshape(-1, g)  # [P, G]
    const = jnp.max(r, axis=1) == jnp.min(r, axis=1)  # [P]
    mean = jnp.mean(r, axis=1, keepdims=True)
    diff = r - mean
    # A constant group's centred rewards are exactly 0 (no float residue of the mean); the
    # form ``diff - stop_gradient(diff)`` keeps that value while a forward-mode tangent (d/dε
    # of r + ε·δ) still sees d(r - mean): the group is tied only at this point.
    centred = jnp.where(const[:, None], diff - jax.lax.stop_gradient(diff), diff)
    if cfg.estimator == "group_std":
        denom = max(g - cfg.ddof, 1)
        var = jnp.sum(centred * centred, axis=1, keepdims=True) / denom
        # sqrt of a constant group's 0 variance is taken at 1 instead: same value of adv (its
        # centred rewards are 0) and a finite forward-mode tangent (sqrt'(0) is infinite).
        std = jnp.where(const[:, None], 0.0, jnp.sqrt(jnp.where(const[:, None], 1.0, var)))
        adv = centred / (std + cfg.eps)
    elif cfg.estimator == "group_mean":
        adv = centred
    else:  # rloo
        adv = centred * (g / (g - 1))
    adv = adv.reshape(-1)
    zero_mask = jnp.repeat(const, g)
    aux = {
        "zero_variance_frac": jnp.mean(const.astype(dtype)),
        "zero_variance_mask": zero_mask,
        "reward_mean": jnp.mean(r),
        "reward_std": std_safe(r),
        "adv_mean": jnp.mean(adv),
        "adv_std": std_safe(adv),
        "adv_abs_max": jnp.max(jnp.abs(adv)),
    }
    return adv, aux
