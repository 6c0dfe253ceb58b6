"""CISPO: Clipped IS-weight Policy Optimization (MiniMax-M1, arXiv 2506.13585 §3.1 eq. 4-7).

REINFORCE with a clipped, stop-gradient importance weight::

    J_CISPO(θ) = E[ (1/Σ_i|o_i|) Σ_i Σ_t  sg(r̂_{i,t}) · Â_{i,t} · log π_θ(o_{i,t} | q, o_{i,<t}) ]

    ℓ_t = −sg(r̂_t)·M_t·Â_t·log π_θ(o_t) + β·KL_t      (token-mean aggregation, eq. 4)

Two cap conventions, named by ``cap``:

* ``"relative"`` (paper eq. 5, verl): ``r̂ = clip(r, 1 − ε^IS_low, 1 + ε^IS_high)``. The paper sets
  ε^IS_low "large" (no lower bound; ``eps_low = 1`` makes the bound 0, inactive since r > 0) and
  tunes only ε^IS_high, whose value it does not disclose. Our default ``eps_high = 0.28``
  (DAPO's clip-higher, the paper's baseline setting) is a **choice**; verl's example uses 0.2.
* ``"absolute"`` (ScaleRL arXiv 2510.13786 eq. 4; TRL ``loss_type="cispo"``):
  ``r̂ = min(r, abs_cap)`` with no lower bound; ScaleRL/TRL recommend ``abs_cap = 5``.
  TRL's ``epsilon_high`` is this absolute cap, not ``1 + ε``.

Optional unified mask ``M`` (paper eq. 6-7): ``M = 0`` if Â > 0 and r > 1 + mask_eps_high, or
Â < 0 and r < 1 − mask_eps_low; else 1. ``None`` (default) disables it. With ``M`` and an
*unclipped* weight the gradient equals PPO-clip's (tested).

Stop-gradients: the weight ``r̂`` (and ``M``) are constants; gradient flows only through
``log π_θ``: ``∂ℓ/∂logp_t = −w_t·r̂_t·M_t·Â_t``, never 0 for Â ≠ 0 without the mask. The loss
*value* contains raw ``log π`` and is not meaningful as a number; gradients are. β = 0 (the paper
uses no KL).

Aux: ``clip_frac_high`` (Â > 0 and weight capped above; TRL's ``cispo_clip_ratio``),
``clip_frac_low`` (Â < 0 and weight capped below), ``capped_frac`` (capped either way, any Â),
``mask_frac`` (tokens zeroed by M), ``weight_mean``, ratio and advantage stats.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from cliffjax.objectives import _common
from cliffjax.objectives.types import PolicyBatch

Array = jax.Array

CAP_CONVENTIONS = ("relative", "absolute")


@dataclasses.dataclass(frozen=True)
class CISPOConfig:
    """CISPO.

    Attributes:
      cap: ``"relative"`` (clip(r, 1−eps_low, 1+eps_high), paper/verl) or ``"absolute"``
        (min(r, abs_cap), ScaleRL/TRL).
      eps_low: ε^IS_low of the relative cap (1.0 = no lower bound, as in the paper).
      eps_high: ε^IS_high of the relative cap (value undisclosed in the paper; see module doc).
      abs_cap: the absolute cap ε_max of ``cap="absolute"``.
      mask_eps_low: ε_low of the unified mask M (eq. 7); ``None`` = no mask.
      mask_eps_high: ε_high of the unified mask M (eq. 7); ``None`` = no mask.
      beta: KL coefficient β (0 in the paper).
      kl_estimator: KL estimator name.
      aggregation: aggregation mode (token-mean in the paper).
      norm_constant: ``C`` of ``constant-normalized-sum`` (None = T).
      log_ratio_clamp: clamp of the log-ratio before ``exp``.
    """

    cap: str = "relative"
    eps_low: float = 1.0
    eps_high: float = 0.28
    abs_cap: float = 5.0
    mask_eps_low: float | None = None
    mask_eps_high: float | None = None
    beta: float = 0.0
    kl_estimator: str = "k3"
    aggregation: str = "token-mean"
    norm_constant: float | None = None
    log_ratio_clamp: float = 20.0

    def __post_init__(self) -> None:
        if self.cap not in CAP_CONVENTIONS:
            raise ValueError(f"cap must be one of {CAP_CONVENTIONS}, got {self.cap!r}")
        for name in ("eps_low", "eps_high"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.abs_cap > 0:
            raise ValueError(f"abs_cap must be > 0, got {self.abs_cap!r}")
        for name in ("mask_eps_low", "mask_eps_high"):
            v = getattr(self, name)
            if v is not None and not v >= 0:
                raise ValueError(f"{name} must be >= 0 or None, got {v!r}")
        _common.check_common(self)


def trust_region_mask(
    ratio: Array, adv: Array, eps_low: float | None, eps_high: float | None
) -> Array:
    """CISPO eq. 7: 0 where Â>0 and r>1+ε_high or Â<0 and r<1−ε_low, else 1 (None = no bound)."""
    keep = jnp.ones(ratio.shape, dtype=bool)
    if eps_high is not None:
        keep &= ~((adv > 0) & (ratio > 1 + eps_high))
    if eps_low is not None:
        keep &= ~((adv < 0) & (ratio < 1 - eps_low))
    return keep


def reinforce_per_token(weight: Array, adv: Array, logp: Array) -> Array:
    """``−sg(weight)·Â·log π``: REINFORCE with a constant per-token weight."""
    return -jax.lax.stop_gradient(weight) * adv * logp


def cispo_loss(
    batch: PolicyBatch, cfg: CISPOConfig, with_aux: bool = True
) -> tuple[Array, Array, dict[str, Array]]:
    """CISPO objective; returns ``(loss_sum, denominator, aux)`` (see module docstring)."""
    p = _common.prepare(batch, cfg.log_ratio_clamp)
    r = jax.lax.stop_gradient(p["ratio"])
    a, m = p["adv"], p["m"]
    if cfg.cap == "relative":
        lo, hi = 1.0 - cfg.eps_low, 1.0 + cfg.eps_high
        w = jnp.clip(r, lo, hi)
        low, high = r < lo, r > hi
    else:
        w = jnp.minimum(r, cfg.abs_cap)
        low, high = jnp.zeros(r.shape, bool), r > cfg.abs_cap
    keep = trust_region_mask(r, a, cfg.mask_eps_low, cfg.mask_eps_high)
    w = jnp.where(keep, w, 0.0)
    pg = reinforce_per_token(w, a, p["logp"])
    aux = _common.ratio_stats(p) if with_aux else {}
    if with_aux:
        aux.update(
            {
                "clip_frac_low": _common.masked_mean((low & (a < 0)).astype(m.dtype), m),
                "clip_frac_high": _common.masked_mean((high & (a > 0)).astype(m.dtype), m),
                "capped_frac": _common.masked_mean((low | high).astype(m.dtype), m),
                "mask_frac": _common.masked_mean((~keep).astype(m.dtype), m),
                "weight_mean": _common.masked_mean(w, m),
            }
        )
    kl = _common.kl_term(batch, p, cfg.beta, cfg.kl_estimator, cfg.log_ratio_clamp)
    return _common.finish(
        pg, kl, cfg.beta, p, batch.mask, cfg.aggregation, cfg.norm_constant, aux, with_aux
    )
