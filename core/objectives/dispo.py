"""DISPO (Karaman et al., arXiv 2602.00983, AISTATS 2026): CISPO with four decoupled bounds.

REINFORCE with a stop-gradient clipped IS weight whose bounds depend on whether the response is
correct (+) or incorrect (−)::

    w_{i,t} = clip(r_{i,t}, 1 − ε⁺_low, 1 + ε⁺_high)   if o_i is correct
    w_{i,t} = clip(r_{i,t}, 1 − ε⁻_low, 1 + ε⁻_high)   otherwise

    ℓ_t = −sg(w_t)·Â_t·log π_θ(o_t) + β·KL_t              (token-mean aggregation)

Provenance: the four-regime decoupling (correct/incorrect × weight above/below 1) is the
paper's abstract; the exact form, the token-mean normalisation, and the defaults
ε⁺_low = 0.2, ε⁺_high = 10, ε⁻_low = 1, ε⁻_high = 100 come from **secondary** sources only
(see docs/objectives.md); the paper's method section could not be read.

"Correct" (``correct_by``): ``"advantage"`` (default; Â_i > 0, as the secondary sources write
it) or ``"reward"`` (R_i > ``reward_threshold``; needs ``batch.rewards``). With 0/1 or ±1
rewards and group-mean baselines both agree on every group with mixed outcomes, and uniform
groups have Â = 0; they differ once rewards are shaped (e.g. an overlong penalty).

Stop-gradients: w is a constant; ``∂ℓ/∂logp_t = −w_t·Â_t·(agg weight)``, never 0 for Â ≠ 0.
With ε⁺ = ε⁻ it is CISPO (relative cap) exactly. The loss value contains raw ``log π``.

Aux: ``frac_{pos,neg}_{up,down}``: fraction of valid tokens in each regime (correct/incorrect ×
r ≥ 1 / r < 1; they sum to 1); ``clip_frac_{pos,neg}_{low,high}``: fraction of valid tokens whose
weight is clipped at that bound; ``weight_mean``; ratio and advantage stats.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from cliffjax.objectives import _common
from cliffjax.objectives.cispo import reinforce_per_token
from cliffjax.objectives.types import PolicyBatch

Array = jax.Array

CORRECT_BY = ("advantage", "reward")


@dataclasses.dataclass(frozen=True)
class DISPOConfig:
    """DISPO (defaults from secondary sources; see module docstring).

    Attributes:
      eps_low_pos: ε⁺_low, lower bound ``1 − ε⁺_low`` for correct responses.
      eps_high_pos: ε⁺_high, upper bound ``1 + ε⁺_high`` for correct responses.
      eps_low_neg: ε⁻_low, lower bound for incorrect responses (1 = none).
      eps_high_neg: ε⁻_high, upper bound for incorrect responses.
      correct_by: ``"advantage"`` (Â_i > 0) or ``"reward"`` (R_i > reward_threshold).
      reward_threshold: threshold of ``correct_by="reward"`` (0.5 suits 0/1 and ±1 rewards).
      beta: KL coefficient β (0: not mentioned by the sources).
      kl_estimator: KL estimator name.
      aggregation: aggregation mode (token-mean per the sources).
      norm_constant: ``C`` of ``constant-normalized-sum`` (None = T).
      log_ratio_clamp: clamp of the log-ratio before ``exp``.
    """

    eps_low_pos: float = 0.2
    eps_high_pos: float = 10.0
    eps_low_neg: float = 1.0
    eps_high_neg: float = 100.0
    correct_by: str = "advantage"
    reward_threshold: float = 0.5
    beta: float = 0.0
    kl_estimator: str = "k3"
    aggregation: str = "token-mean"
    norm_constant: float | None = None
    log_ratio_clamp: float = 20.0

    def __post_init__(self) -> None:
        for name in ("eps_low_pos", "eps_high_pos", "eps_low_neg", "eps_high_neg"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.correct_by not in CORRECT_BY:
            raise ValueError(f"correct_by must be one of {CORRECT_BY}, got {self.correct_by!r}")
        _common.check_common(self)


def dispo_loss(
    batch: PolicyBatch, cfg: DISPOConfig, with_aux: bool = True
) -> tuple[Array, Array, dict[str, Array]]:
    """DISPO objective; returns ``(loss_sum, denominator, aux)`` (see module docstring)."""
    p = _common.prepare(batch, cfg.log_ratio_clamp)
    r = jax.lax.stop_gradient(p["ratio"])
    a, m, valid = p["adv"], p["m"], p["valid"]
    if cfg.correct_by == "advantage":
        correct = a > 0
    else:
        if batch.rewards is None:
            raise ValueError("correct_by='reward' needs batch.rewards")
        rew = jax.lax.stop_gradient(batch.rewards)
        correct = jnp.broadcast_to((rew > cfg.reward_threshold)[:, None], r.shape)
    lo = jnp.where(correct, 1.0 - cfg.eps_low_pos, 1.0 - cfg.eps_low_neg)
    hi = jnp.where(correct, 1.0 + cfg.eps_high_pos, 1.0 + cfg.eps_high_neg)
    w = jnp.clip(r, lo, hi)
    pg = reinforce_per_token(w, a, p["logp"])
    up = r >= 1
    f = lambda cond: _common.masked_mean((cond & valid).astype(m.dtype), m)
    aux = _common.ratio_stats(p) if with_aux else {}
    if with_aux:
        aux.update(
            {
                "frac_pos_up": f(correct & up),
                "frac_pos_down": f(correct & ~up),
                "frac_neg_up": f(~correct & up),
                "frac_neg_down": f(~correct & ~up),
                "clip_frac_pos_low": f(correct & (r < lo)),
                "clip_frac_pos_high": f(correct & (r > hi)),
                "clip_frac_neg_low": f(~correct & (r < lo)),
                "clip_frac_neg_high": f(~correct & (r > hi)),
                "weight_mean": _common.masked_mean(w, m),
            }
        )
    kl = _common.kl_term(batch, p, cfg.beta, cfg.kl_estimator, cfg.log_ratio_clamp)
    return _common.finish(
        pg, kl, cfg.beta, p, batch.mask, cfg.aggregation, cfg.norm_constant, aux, with_aux
    )
