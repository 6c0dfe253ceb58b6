"""Pairwise preference objectives: DPO and RPO.

With summed response log-probs ``ℓ(y) = Σ_t m_t·log π(y_t | x, y_<t)`` and the implicit reward
margin ``h = β[(ℓ_θ(y_w) − ℓ_ref(y_w)) − (ℓ_θ(y_l) − ℓ_ref(y_l))]``:

* DPO (Rafailov et al., arXiv 2305.18290 eq. 7): ``L = −log σ(h)`` per pair, mean over pairs.
  β = 0.1 (the paper's main setting; TRL default).
* RPO (Liu et al., arXiv 2405.16436, "Your SFT loss is implicitly an adversarial regularizer";
  Algorithm 1 / eq. (4.5) as implemented by the authors): DPO plus an SFT (negative
  log-likelihood) term on the chosen response, ``L = −log σ(h) + coef·NLL(y_w)``.
  ``sft_normalization`` picks the NLL:

  - ``"sum"`` (default; the official code's "cumulative SFT loss", used in the main paper):
    ``NLL = −ℓ_θ(y_w)``, token **sum**, and ``coef = η·β`` (``sft_coef_times_beta=True``).
  - ``"seq_mean"`` (the authors' "average SFT loss" variant, OpenRLHF script):
    ``NLL = −ℓ_θ(y_w)/|y_w|``; that code uses ``coef = η`` (set ``sft_coef_times_beta=False``).
  - ``"batch_token_mean"`` (TRL ``loss_type=["sigmoid","sft"]`` and legacy ``rpo_alpha``):
    one scalar ``Σ_pairs −ℓ_θ(y_w) / Σ_pairs |y_w|`` added to the pair-mean. It is a ratio of
    batch sums, so it is exact for the batch it is given but **not** additive over
    micro-batches (neither is TRL's).

  Defaults β = 0.01, η = 0.005 (official zephyr-7b-beta config). η = 0 gives DPO exactly.

Stop-gradients: the reference log-probs are constants. Returns ``(loss_sum, n_pairs, aux)``;
pairs whose chosen or rejected mask is empty are skipped (padding pairs change nothing).
Aux: ``reward_chosen/rejected`` (β·(ℓ_θ − ℓ_ref) means), ``reward_margin``, ``reward_accuracy``,
``logp_chosen/rejected`` means, ``dpo_loss`` and, for RPO, ``sft_nll``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from cliffjax.objectives.aggregation import finalize_loss
from cliffjax.objectives.types import PreferenceBatch

Array = jax.Array

SFT_NORMALIZATIONS = ("sum", "seq_mean", "batch_token_mean")


@dataclasses.dataclass(frozen=True)
class DPOConfig:
    """DPO.

    Attributes:
      beta: inverse temperature β of the implicit reward.
    """

    beta: float = 0.1

    def __post_init__(self) -> None:
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0, got {self.beta!r}")


@dataclasses.dataclass(frozen=True)
class RPOConfig:
    """RPO = DPO + coef·NLL(chosen).

    Attributes:
      beta: DPO β (0.01 in the official zephyr-7b-beta config).
      eta: η, weight of the SFT term (0.005 official).
      sft_normalization: ``"sum"`` (paper/official), ``"seq_mean"`` (authors' average variant)
        or ``"batch_token_mean"`` (TRL).
      sft_coef_times_beta: SFT coefficient is ``η·β`` (official cumulative form) if True, else ``η``.
    """

    beta: float = 0.01
    eta: float = 0.005
    sft_normalization: str = "sum"
    sft_coef_times_beta: bool = True

    def __post_init__(self) -> None:
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0, got {self.beta!r}")
        if not self.eta >= 0:
            raise ValueError(f"eta must be >= 0, got {self.eta!r}")
        if self.sft_normalization not in SFT_NORMALIZATIONS:
            raise ValueError(
                f"sft_normalization must be one of {SFT_NORMALIZATIONS}, "
                f"got {self.sft_normalization!r}"
            )


def _check(batch: PreferenceBatch) -> None:
    shape = batch.logp_chosen.shape
    if len(shape) != 2:
        raise ValueError(f"logp_chosen must be [B, T], got {shape}")
    for name in ("ref_chosen", "mask_chosen"):
        if getattr(batch, name).shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {getattr(batch, name).shape}")
    rshape = batch.logp_rejected.shape
    if len(rshape) != 2 or rshape[0] != shape[0]:
        raise ValueError(f"logp_rejected must be [B, T'] with B={shape[0]}, got {rshape}")
    for name in ("ref_rejected", "mask_rejected"):
        if getattr(batch, name).shape != rshape:
            raise ValueError(f"{name} must have shape {rshape}, got {getattr(batch, name).shape}")


def _seq_sum(x: Array, mask: Array, dtype) -> Array:
    return jnp.sum(jnp.where(mask != 0, x.astype(dtype), 0.0), axis=1)


def _dpo_parts(batch: PreferenceBatch, beta: float, with_aux: bool = True):
    _check(batch)
    dt = jnp.promote_types(batch.logp_chosen.dtype, jnp.float32)
    sg = jax.lax.stop_gradient
    lw = _seq_sum(batch.logp_chosen, batch.mask_chosen, dt)
    ll = _seq_sum(batch.logp_rejected, batch.mask_rejected, dt)
    rw = sg(_seq_sum(batch.ref_chosen, batch.mask_chosen, dt))
    rl = sg(_seq_sum(batch.ref_rejected, batch.mask_rejected, dt))
    len_w = jnp.sum((batch.mask_chosen != 0).astype(dt), axis=1)
    len_l = jnp.sum((batch.mask_rejected != 0).astype(dt), axis=1)
    valid = (len_w > 0) & (len_l > 0)
    reward_w, reward_l = beta * (lw - rw), beta * (ll - rl)
    h = reward_w - reward_l
    per_pair = jnp.where(valid, jax.nn.softplus(-h), 0.0)  # −log σ(h), stable for large |h|
    n = jnp.sum(valid.astype(dt))
    vf = valid.astype(dt)

    def mean(x):
        return jnp.sum(jnp.where(valid, sg(x), 0.0)) / jnp.maximum(n, 1.0)

    if not with_aux:
        return per_pair, n, vf, lw, len_w, {}
    aux = {
        "reward_chosen": mean(reward_w),
        "reward_rejected": mean(reward_l),
        "reward_margin": mean(h),
        "reward_accuracy": mean((h > 0).astype(dt)),
        "logp_chosen": mean(lw),
        "logp_rejected": mean(ll),
    }
    return per_pair, n, vf, lw, len_w, aux


def dpo_loss(
    batch: PreferenceBatch, cfg: DPOConfig, with_aux: bool = True
) -> tuple[Array, Array, dict[str, Array]]:
    """DPO; returns ``(Σ_pairs −log σ(h), n_pairs, aux)`` (aux empty unless ``with_aux``)."""
    per_pair, n, _, _, _, aux = _dpo_parts(batch, cfg.beta, with_aux)
    s = jnp.sum(per_pair)
    if with_aux:
        aux["dpo_loss"] = finalize_loss(jax.lax.stop_gradient(s), n)
    return s, n, aux


def rpo_loss(
    batch: PreferenceBatch, cfg: RPOConfig, with_aux: bool = True
) -> tuple[Array, Array, dict[str, Array]]:
    """RPO; returns ``(Σ_pairs [−log σ(h) + coef·NLL_pair], n_pairs, aux)`` (module docstring)."""
    per_pair, n, vf, lw, len_w, aux = _dpo_parts(batch, cfg.beta, with_aux)
    dpo_sum = jnp.sum(per_pair)
    coef = cfg.eta * cfg.beta if cfg.sft_coef_times_beta else cfg.eta
    if cfg.sft_normalization == "sum":
        nll_sum = jnp.sum(-lw * vf)
    elif cfg.sft_normalization == "seq_mean":
        nll_sum = jnp.sum(-lw / jnp.maximum(len_w, 1.0) * vf)
    else:  # batch_token_mean, added once to the pair mean: n_pairs · (Σ −ℓ_w / Σ|y_w|)
        token_mean = jnp.sum(-lw * vf) / jnp.maximum(jnp.sum(len_w * vf), 1.0)
        nll_sum = n * token_mean
    if with_aux:
        aux["dpo_loss"] = finalize_loss(jax.lax.stop_gradient(dpo_sum), n)
        aux["sft_nll"] = finalize_loss(jax.lax.stop_gradient(nll_sum), n)
    return dpo_sum + coef * nll_sum, n, aux
