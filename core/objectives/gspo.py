"""GSPO: Group Sequence Policy Optimization (Zheng et al., arXiv 2507.18071, eq. 5 and 7).

Sequence-level, length-normalised importance ratio::

    s_i(θ) = (π_θ(o_i|q) / π_old(o_i|q))^{1/|o_i|} = exp( (1/|o_i|) Σ_t (log π_θ − log π_old)_{i,t} )

    J_GSPO(θ) = E[ (1/G) Σ_i min( s_i Â_i, clip(s_i, 1−ε_low, 1+ε_high) Â_i ) ]

The clip acts per **sequence**: a whole response is clipped or not. Per-token implementation:
every valid token of row ``i`` carries the sequence term ``ℓ_i = −min(s_i Â_i, clip(s_i) Â_i)``;
with the default ``seq-mean-token-mean`` aggregation that gives exactly ``(1/G) Σ_i ℓ_i``.
Other aggregation modes are accepted but weight sequences by length (TRL warns about the same
thing); they are not the paper's objective.

``Â_i`` must be a sequence advantage (``[B]``); ``[B, T]`` inputs are reduced to their masked
row mean. Stop-gradients: ``logp_old``, ``Â`` constant. ``∂s_i/∂logp_it = s_i/|o_i|``, so all
tokens of an unclipped sequence get the same gradient ``−w·Â_i·s_i/|o_i|``.

The GSPO-token variant (eq. 13-14), ``s_{i,t} = sg[s_i]·π_θ(o_it)/sg[π_θ(o_it)]``, equals
GSPO in value and gradient when Â is per sequence; :func:`gspo_token_loss` implements it for the
equivalence test and for token-level advantages.

Defaults: ε_low = 3e-4, ε_high = 4e-4 (paper §5.1: "we set the left and right clipping ranges in
Equation (5) to 3e-4 and 4e-4"), β = 0 (§2: the KL term is omitted). The mean log-ratio is
clamped to ±``log_ratio_clamp``.
Aux: ``clip_frac_low/high`` (fraction of valid tokens in clipped sequences),
``seq_clip_frac`` (fraction of non-empty sequences clipped), sequence-ratio mean/min/max.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from cliffjax.objectives import _common
from cliffjax.objectives.ppo_clip import ppo_clip_per_token
from cliffjax.objectives.types import PolicyBatch

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class GSPOConfig:
    """GSPO (sequence-level ratio and clip).

    Attributes:
      eps_low: lower clip of the sequence ratio (``1 − eps_low``).
      eps_high: upper clip of the sequence ratio (``1 + eps_high``).
      beta: KL coefficient β (per-token KL added to the loss; 0 in the paper).
      kl_estimator: KL estimator name (see ``cliffjax.objectives.kl``).
      aggregation: aggregation mode; ``seq-mean-token-mean`` is the paper's objective.
      norm_constant: ``C`` of ``constant-normalized-sum`` (None = T).
      log_ratio_clamp: clamp of the mean log-ratio before ``exp``.
    """

    eps_low: float = 3e-4
    eps_high: float = 4e-4
    beta: float = 0.0
    kl_estimator: str = "k3"
    aggregation: str = "seq-mean-token-mean"
    norm_constant: float | None = None
    log_ratio_clamp: float = 20.0

    def __post_init__(self) -> None:
        if not self.eps_low >= 0:
            raise ValueError(f"eps_low must be >= 0, got {self.eps_low!r}")
        if not self.eps_high >= 0:
            raise ValueError(f"eps_high must be >= 0, got {self.eps_high!r}")
        _common.check_common(self)


def _sequence_parts(p: dict[str, Array]) -> tuple[Array, Array, Array, Array]:
    m = p["m"]
    lengths = jnp.sum(m, axis=1)  # [B]
    nonempty = lengths > 0
    mean_lr = jnp.sum(p["log_ratio"] * m, axis=1) / jnp.maximum(lengths, 1.0)
    adv_seq = jnp.sum(p["adv"] * m, axis=1) / jnp.maximum(lengths, 1.0)
    return mean_lr, adv_seq, nonempty, lengths


def gspo_loss(
    batch: PolicyBatch, cfg: GSPOConfig, with_aux: bool = True
) -> tuple[Array, Array, dict[str, Array]]:
    """GSPO sequence objective; returns ``(loss_sum, denominator, aux)``."""
    p = _common.prepare(batch, cfg.log_ratio_clamp)
    m = p["m"]
    mean_lr, adv_seq, nonempty, _ = _sequence_parts(p)
    mean_lr = jnp.clip(mean_lr, -cfg.log_ratio_clamp, cfg.log_ratio_clamp)
    s = jnp.exp(mean_lr)  # [B]
    seq_loss = ppo_clip_per_token(s, adv_seq, cfg.eps_low, cfg.eps_high, None)  # [B]
    pg = jnp.where(p["valid"], seq_loss[:, None], 0.0)
    ss = jax.lax.stop_gradient(s)
    low = (adv_seq < 0) & (ss < 1 - cfg.eps_low)
    high = (adv_seq > 0) & (ss > 1 + cfg.eps_high)
    ne = nonempty.astype(m.dtype)
    aux = _common.ratio_stats(p) if with_aux else {}
    if with_aux:
        aux.update(
            {
                "clip_frac_low": _common.masked_mean(jnp.broadcast_to(low[:, None], m.shape), m),
                "clip_frac_high": _common.masked_mean(jnp.broadcast_to(high[:, None], m.shape), m),
                "seq_clip_frac": _common.masked_mean((low | high).astype(m.dtype), ne),
                "seq_ratio_mean": _common.masked_mean(ss, ne),
                "seq_ratio_min": _common.masked_min(ss, ne),
                "seq_ratio_max": _common.masked_max(ss, ne),
            }
        )
    kl = _common.kl_term(batch, p, cfg.beta, cfg.kl_estimator, cfg.log_ratio_clamp)
    return _common.finish(
        pg, kl, cfg.beta, p, batch.mask, cfg.aggregation, cfg.norm_constant, aux, with_aux
    )


def gspo_token_loss(
    batch: PolicyBatch, cfg: GSPOConfig, with_aux: bool = True
) -> tuple[Array, Array, dict[str, Array]]:
    """GSPO-token (arXiv 2507.18071 eq. 13-14): ``s_it = sg[s_i]·exp(logp_it − sg[logp_it])``.

    Same value as GSPO; with per-sequence advantages the same gradient too. Accepts ``[B, T]``
    advantages (used per token). Returns ``(loss_sum, denominator, aux)``.
    """
    p = _common.prepare(batch, cfg.log_ratio_clamp)
    mean_lr, _, _, _ = _sequence_parts(p)
    mean_lr = jnp.clip(mean_lr, -cfg.log_ratio_clamp, cfg.log_ratio_clamp)
    s_sg = jax.lax.stop_gradient(jnp.exp(mean_lr))[:, None]
    # exp(x − sg(x)) is 1 in value and carries d/dx = 1; mean_lr's gradient is dropped on purpose.
    lp = p["logp"]
    s_tok = s_sg * jnp.exp(lp - jax.lax.stop_gradient(lp))
    pg = ppo_clip_per_token(s_tok, p["adv"], cfg.eps_low, cfg.eps_high, None)
    aux = _common.ratio_stats(p) if with_aux else {}
    kl = _common.kl_term(batch, p, cfg.beta, cfg.kl_estimator, cfg.log_ratio_clamp)
    return _common.finish(
        pg, kl, cfg.beta, p, batch.mask, cfg.aggregation, cfg.norm_constant, aux, with_aux
    )
