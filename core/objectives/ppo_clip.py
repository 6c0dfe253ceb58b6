"""PPO-clip surrogate as used by GRPO, DAPO and Dr. GRPO.

Per token (``r = π_θ/π_old`` of the sampled token, ``Â`` the constant advantage)::

    ℓ_t = −min( r·Â, clip(r, 1−ε_low, 1+ε_high)·Â ) + β·KL_t

* GRPO (arXiv 2402.03300 eq. 3): symmetric ε (``ε_low = ε_high``), β = 0.04 with the k3
  estimator **in the loss**, ``seq-mean-token-mean`` aggregation (1/G Σ_i 1/|o_i| Σ_t).
* DAPO (arXiv 2503.14476 eq. 8/10): "clip-higher" ``ε_low = 0.2, ε_high = 0.28``, no KL (β = 0),
  ``token-mean`` aggregation (1/Σ|o_i| Σ_i Σ_t; the paper normalises per group, the frameworks
  and this code per batch).
* Dr. GRPO (arXiv 2503.20783 §3.2 and Listing 1): no 1/|o_i| and no std in the advantage; the
  per-response token sum is divided by a constant ``MAX_TOKENS`` (the generation budget; "other
  constants also work") and averaged over responses, i.e. ``Σ ℓ / (B·C)`` =
  ``constant-normalized-sum`` (Â from the ``group_mean`` estimator).
* Optional dual clip (Ye et al. 2020, arXiv 1912.09729 "dual-clip PPO"; verl ``clip_ratio_c``):
  for Â < 0 the loss is capped at ``c·|Â|``, i.e. ``ℓ = min(ℓ, −c·Â)``; tokens with r > c then get
  zero gradient. Off by default (not in GRPO/DAPO).

Stop-gradients: ``logp_old``, ``logp_ref`` and ``Â`` are constants; gradients flow only through
``logp`` via ``r = exp(logp − sg(logp_old))``. The log-ratio is clamped to ±``log_ratio_clamp``
(20, as tunix and verl) before ``exp``; beyond the clamp the ratio has zero gradient.

Gradient per token (``w`` the aggregation weight, β = 0): ``−w·Â·r`` where the unclipped branch is
active, exactly 0 where the clip binds in the advantage's direction (Â > 0 and r > 1+ε_high, or
Â < 0 and r < 1−ε_low) and, with the dual clip, where Â < 0 and r > c. At r ≡ 1 it is the vanilla
policy gradient ``−w·Â·∇log π``.

Aux metrics: ``clip_frac_low`` (Â<0, r<1−ε_low), ``clip_frac_high`` (Â>0, r>1+ε_high),
``clip_frac_dual`` (Â<0, r>c), ratio mean/min/max, ``log_ratio_abs_mean``, advantage mean/std
(token-weighted), ``pg_loss``, and with β > 0 ``kl_loss``/``kl_mean``. All are means over valid
tokens of this (micro-)batch.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from cliffjax.objectives import _common
from cliffjax.objectives.types import PolicyBatch

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class PPOClipConfig:
    """PPO-clip surrogate (GRPO / DAPO / Dr. GRPO share this config; defaults differ).

    Attributes:
      eps_low: lower clip ε_low; the ratio is clipped at ``1 − eps_low``.
      eps_high: upper clip ε_high; the ratio is clipped at ``1 + eps_high``.
      clip_ratio_c: dual-clip constant ``c > 1`` (loss capped at ``c·|Â|`` for Â < 0);
        ``None`` = off.
      beta: KL coefficient β (KL against ``logp_ref`` added to the per-token loss).
      kl_estimator: ``"k1" | "k2" | "k3" | "k3_ratio"`` (see ``cliffjax.objectives.kl``).
      aggregation: aggregation mode (see ``cliffjax.objectives.aggregation``).
      norm_constant: ``C`` of ``constant-normalized-sum``; ``None`` = padded width T.
      log_ratio_clamp: ``|log r|`` is clamped to this before ``exp``.
    """

    eps_low: float = 0.2
    eps_high: float = 0.2
    clip_ratio_c: float | None = None
    beta: float = 0.0
    kl_estimator: str = "k3"
    aggregation: str = "token-mean"
    norm_constant: float | None = None
    log_ratio_clamp: float = 20.0

    def __post_init__(self) -> None:
        if not 0 <= self.eps_low:
            raise ValueError(f"eps_low must be >= 0, got {self.eps_low!r}")
        if not 0 <= self.eps_high:
            raise ValueError(f"eps_high must be >= 0, got {self.eps_high!r}")
        if self.clip_ratio_c is not None and not self.clip_ratio_c > 1:
            raise ValueError(f"clip_ratio_c must be > 1 or None, got {self.clip_ratio_c!r}")
        _common.check_common(self)


@dataclasses.dataclass(frozen=True)
class GRPOConfig(PPOClipConfig):
    """GRPO defaults (arXiv 2402.03300 eq. 3, §4.2): ε = 0.2 (usual; the paper does not state
    it), β = 0.04 with k3 in the loss, seq-mean-token-mean."""

    eps_low: float = 0.2
    eps_high: float = 0.2
    beta: float = 0.04
    kl_estimator: str = "k3"
    aggregation: str = "seq-mean-token-mean"


@dataclasses.dataclass(frozen=True)
class DAPOConfig(PPOClipConfig):
    """DAPO defaults (arXiv 2503.14476 eq. 8, §4.1): ε_low = 0.2, ε_high = 0.28, β = 0,
    token-mean."""

    eps_low: float = 0.2
    eps_high: float = 0.28
    beta: float = 0.0
    aggregation: str = "token-mean"


@dataclasses.dataclass(frozen=True)
class DrGRPOConfig(PPOClipConfig):
    """Dr. GRPO defaults (arXiv 2503.20783 §3.2): ε = 0.2, β = 0, constant-normalized sum with
    ``C`` = ``norm_constant`` (None = padded width T = max generation length)."""

    eps_low: float = 0.2
    eps_high: float = 0.2
    beta: float = 0.0
    aggregation: str = "constant-normalized-sum"


def ppo_clip_per_token(
    ratio: Array, adv: Array, eps_low: float, eps_high: float, clip_ratio_c: float | None
) -> Array:
    """Elementwise ``−min(r·Â, clip(r)·Â)`` (with the optional dual clip for Â < 0)."""
    clipped = jnp.clip(ratio, 1.0 - eps_low, 1.0 + eps_high)
    loss = jnp.maximum(-adv * ratio, -adv * clipped)
    if clip_ratio_c is not None:
        loss = jnp.where(adv < 0, jnp.minimum(loss, -adv * clip_ratio_c), loss)
    return loss


def ppo_clip_loss(
    batch: PolicyBatch, cfg: PPOClipConfig, with_aux: bool = True
) -> tuple[Array, Array, dict[str, Array]]:
    """PPO-clip objective; returns ``(loss_sum, denominator, aux)`` (see module docstring).

    Shapes: ``batch.logp/logp_old/mask[/logp_ref]`` are ``[B, T]``, advantages ``[B]`` or
    ``[B, T]``. Half-precision inputs are computed in float32.
    """
    p = _common.prepare(batch, cfg.log_ratio_clamp)
    r, a, m = p["ratio"], p["adv"], p["m"]
    pg = ppo_clip_per_token(r, a, cfg.eps_low, cfg.eps_high, cfg.clip_ratio_c)
    rs = jax.lax.stop_gradient(r)
    aux = _common.ratio_stats(p) if with_aux else {}
    if with_aux:
        aux["clip_frac_low"] = _common.masked_mean(
            ((a < 0) & (rs < 1 - cfg.eps_low)).astype(m.dtype), m
        )
        aux["clip_frac_high"] = _common.masked_mean(
            ((a > 0) & (rs > 1 + cfg.eps_high)).astype(m.dtype), m
        )
    if with_aux and cfg.clip_ratio_c is not None:
        aux["clip_frac_dual"] = _common.masked_mean(
            ((a < 0) & (rs > cfg.clip_ratio_c)).astype(m.dtype), m
        )
    kl = _common.kl_term(batch, p, cfg.beta, cfg.kl_estimator, cfg.log_ratio_clamp)
    return _common.finish(
        pg, kl, cfg.beta, p, batch.mask, cfg.aggregation, cfg.norm_constant, aux, with_aux
    )
