"""MHPO: Modulated Hazard-aware Policy Optimization (Wang et al., arXiv 2603.16929).

With ``u = log r = log π_θ − log π_old`` per token:

* Log-Fidelity Modulator (LFM): ``ψ(r) = c·tanh(u / c)``, in ``(−c, c)``, ≈ ``u`` near r = 1.
* Decoupled Hazard Penalty (DHP), Weibull cumulative hazards on the positive and negative
  shifts of the *stopped* modulator::

      ζ(r) = (s(sg[ψ]) / λ₊)^{k₊} + (s(−sg[ψ]) / λ₋)^{k₋}

  with the split ``s`` = softplus (``hazard_split="softplus"``, as both secondary sources write
  it; then ζ(1) = (ln2/λ₊)^{k₊} + (ln2/λ₋)^{k₋} ≈ 1.328 ≠ 0 at the defaults) or
  ``s = max(·, 0)`` (``"relu"``, the zero-at-one alternative: ζ(1) = 0).
* Modulated weight ``w = exp(ψ − sg[ζ])`` and per-token loss ``ℓ_t = −w_t·Â_t (+ β·KL_t)``,
  aggregated ``seq-mean-token-mean`` (the sources' formula; their verl script uses token-mean,
  available through ``aggregation``). No clip, no min.

Stop-gradient: ζ is computed from ``sg[ψ]`` and is itself stopped, so it only rescales the
gradient (``hazard_stop_gradient=False`` lets gradient flow through ζ, for the ablation test).
Gradient per token: ``∂ℓ/∂logp = −Â·M(r)·(agg weight)`` with the multiplier
``M(r) = exp(ψ − ζ)·sech²(u/c)``, ``0 < M ≤ e^c`` (Theorem 1 as reported; ζ ≥ 0, sech² ≤ 1).
At r = 1: ``M = e^{−ζ(1)}`` (≈ 0.26506 at the defaults with softplus, 1 with relu), i.e. vanilla
PG times that constant. Large c and λ: ``w → r``, the unclipped importance-weighted surrogate.

Defaults (secondary sources S1 and S2 agree; the paper text could not be read):
c = 1.5, k₊ = 1.5, λ₊ = 1.0, k₋ = 2.0, λ₋ = 0.8, β = 0.

Aux: ``weight_mean/min/max`` (modulated weight w), ``hazard_mean/max`` (ζ),
``multiplier_mean/max`` (M), ``psi_abs_mean``, ratio and advantage stats.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from cliffjax.objectives import _common
from cliffjax.objectives.types import PolicyBatch

Array = jax.Array

HAZARD_SPLITS = ("softplus", "relu")


@dataclasses.dataclass(frozen=True)
class MHPOConfig:
    """MHPO (defaults from secondary sources; see module docstring).

    Attributes:
      c: LFM scale; ψ = c·tanh(log r / c) ∈ (−c, c).
      k_pos: Weibull shape k₊ of the positive-shift hazard (r > 1).
      lam_pos: Weibull scale λ₊ of the positive-shift hazard.
      k_neg: Weibull shape k₋ of the negative-shift hazard (r < 1).
      lam_neg: Weibull scale λ₋ of the negative-shift hazard.
      hazard_split: ``"softplus"`` (sources; ζ(1) ≠ 0) or ``"relu"`` (ζ(1) = 0).
      hazard_stop_gradient: stop the gradient through ζ (the method); False only for ablations.
      beta: KL coefficient β (0: the sources' script disables the KL loss).
      kl_estimator: KL estimator name.
      aggregation: aggregation mode (seq-mean-token-mean per the sources' formula).
      norm_constant: ``C`` of ``constant-normalized-sum`` (None = T).
      log_ratio_clamp: clamp of the log-ratio in the ratio metrics and the KL term (ψ uses the
        unclamped log-ratio; tanh bounds it).
    """

    c: float = 1.5
    k_pos: float = 1.5
    lam_pos: float = 1.0
    k_neg: float = 2.0
    lam_neg: float = 0.8
    hazard_split: str = "softplus"
    hazard_stop_gradient: bool = True
    beta: float = 0.0
    kl_estimator: str = "k3"
    aggregation: str = "seq-mean-token-mean"
    norm_constant: float | None = None
    log_ratio_clamp: float = 20.0

    def __post_init__(self) -> None:
        for name in ("c", "k_pos", "lam_pos", "k_neg", "lam_neg"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.hazard_split not in HAZARD_SPLITS:
            raise ValueError(
                f"hazard_split must be one of {HAZARD_SPLITS}, got {self.hazard_split!r}"
            )
        if not self.hazard_stop_gradient and min(self.k_pos, self.k_neg) < 1:
            raise ValueError("k_pos and k_neg must be >= 1 when hazard_stop_gradient is False")
        _common.check_common(self)


def hazard(psi: Array, cfg: MHPOConfig) -> Array:
    """DHP ``ζ = (s(ψ)/λ₊)^{k₊} + (s(−ψ)/λ₋)^{k₋}`` (no stop-gradient here)."""
    split = jax.nn.softplus if cfg.hazard_split == "softplus" else jax.nn.relu
    return (split(psi) / cfg.lam_pos) ** cfg.k_pos + (split(-psi) / cfg.lam_neg) ** cfg.k_neg


def mhpo_weight(log_ratio: Array, cfg: MHPOConfig) -> tuple[Array, Array, Array]:
    """``(w, ψ, ζ)`` with ``w = exp(ψ − ζ)``; ζ from ``sg[ψ]`` and stopped per the config."""
    psi = cfg.c * jnp.tanh(log_ratio / cfg.c)
    if cfg.hazard_stop_gradient:
        zeta = jax.lax.stop_gradient(hazard(jax.lax.stop_gradient(psi), cfg))
    else:
        zeta = hazard(psi, cfg)
    return jnp.exp(psi - zeta), psi, zeta


def mhpo_loss(
    batch: PolicyBatch, cfg: MHPOConfig, with_aux: bool = True
) -> tuple[Array, Array, dict[str, Array]]:
    """MHPO objective; returns ``(loss_sum, denominator, aux)`` (see module docstring)."""
    p = _common.prepare(batch, cfg.log_ratio_clamp)
    a, m = p["adv"], p["m"]
    # tanh bounds ψ already, so MHPO uses the unclamped log-ratio: its gradient stays non-zero
    # (sech²) beyond the ±log_ratio_clamp that the other objectives apply.
    w, psi, zeta = mhpo_weight(p["raw_log_ratio"], cfg)
    pg = -w * a
    ws, zs = jax.lax.stop_gradient(w), jax.lax.stop_gradient(zeta)
    sech2 = 1.0 - jnp.tanh(jax.lax.stop_gradient(p["raw_log_ratio"]) / cfg.c) ** 2
    mult = ws * sech2
    aux = _common.ratio_stats(p) if with_aux else {}
    if with_aux:
        aux.update(
            {
                "weight_mean": _common.masked_mean(ws, m),
                "weight_min": _common.masked_min(ws, m),
                "weight_max": _common.masked_max(ws, m),
                "hazard_mean": _common.masked_mean(zs, m),
                "hazard_max": _common.masked_max(zs, m),
                "multiplier_mean": _common.masked_mean(mult, m),
                "multiplier_max": _common.masked_max(mult, m),
                "psi_abs_mean": _common.masked_mean(jnp.abs(jax.lax.stop_gradient(psi)), m),
            }
        )
    kl = _common.kl_term(batch, p, cfg.beta, cfg.kl_estimator, cfg.log_ratio_clamp)
    return _common.finish(
        pg, kl, cfg.beta, p, batch.mask, cfg.aggregation, cfg.norm_constant, aux, with_aux
    )
