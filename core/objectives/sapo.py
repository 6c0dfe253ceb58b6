"""SAPO: Soft Adaptive Policy Optimization (Gao et al., arXiv 2511.20347), a soft-gated contrast.

The hard clip is replaced by a temperature-controlled sigmoid gate of the token ratio::

    f_τ(r) = (4/τ)·σ(τ(r − 1)),    τ = τ_pos if Â > 0 else τ_neg
    ℓ_t = −f_τ(r_t)·Â_t (+ β·KL_t),  aggregated seq-mean-token-mean (1/G Σ_i 1/|o_i| Σ_t)

``∂f/∂r = 4σ(1−σ)`` is 1 at r = 1, so the on-policy gradient is vanilla PG. Defaults
τ_pos = 1.0, τ_neg = 1.05 (TRL/verl defaults; the paper's own values were not read here).
Stop-gradients as in PPO-clip (``logp_old``, ``Â`` constants). Included as the soft-gate
contrast to MHPO (which the MHPO sources compare against); not one of the issue's objectives.

Aux: ``gate_mean`` (f_τ), ratio and advantage stats.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from cliffjax.objectives import _common
from cliffjax.objectives.types import PolicyBatch

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class SAPOConfig:
    """SAPO.

    Attributes:
      tau_pos: gate temperature for Â > 0.
      tau_neg: gate temperature for Â ≤ 0.
      beta: KL coefficient β.
      kl_estimator: KL estimator name.
      aggregation: aggregation mode (seq-mean-token-mean as TRL's ``sapo``).
      norm_constant: ``C`` of ``constant-normalized-sum`` (None = T).
      log_ratio_clamp: clamp of the log-ratio before ``exp``.
    """

    tau_pos: float = 1.0
    tau_neg: float = 1.05
    beta: float = 0.0
    kl_estimator: str = "k3"
    aggregation: str = "seq-mean-token-mean"
    norm_constant: float | None = None
    log_ratio_clamp: float = 20.0

    def __post_init__(self) -> None:
        for name in ("tau_pos", "tau_neg"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        _common.check_common(self)


def sapo_loss(
    batch: PolicyBatch, cfg: SAPOConfig, with_aux: bool = True
) -> tuple[Array, Array, dict[str, Array]]:
    """SAPO objective; returns ``(loss_sum, denominator, aux)``."""
    p = _common.prepare(batch, cfg.log_ratio_clamp)
    r, a, m = p["ratio"], p["adv"], p["m"]
    tau = jnp.where(a > 0, cfg.tau_pos, cfg.tau_neg)
    gate = (4.0 / tau) * jax.nn.sigmoid(tau * (r - 1.0))
    pg = -gate * a
    aux = _common.ratio_stats(p) if with_aux else {}
    if with_aux:
        aux["gate_mean"] = _common.masked_mean(jax.lax.stop_gradient(gate), m)
    kl = _common.kl_term(batch, p, cfg.beta, cfg.kl_estimator, cfg.log_ratio_clamp)
    return _common.finish(
        pg, kl, cfg.beta, p, batch.mask, cfg.aggregation, cfg.norm_constant, aux, with_aux
    )
