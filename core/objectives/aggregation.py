"""Token aggregation as (sum, denominator) pairs.

Every mode is written as ``loss = Σ_{i,t} w_{i,t} ℓ_{i,t} / D`` where the per-token weights ``w``
depend only on row ``i`` and the denominator ``D`` is a sum over rows. Because both numerator and
denominator are sums over rows, micro-batches, gradient-accumulation steps and data-parallel
shards can add their sums and their denominators and divide once: that gives exactly the
whole-batch loss (tested in ``tests/core/objectives/test_aggregation.py``).

Modes (named by their formula; ``m`` the mask, ``L_i = Σ_t m_it`` the row length, ``N_ne`` the
number of non-empty rows, ``C`` a constant):

=========================== ================================ ==========================
mode                        sum                              denominator
=========================== ================================ ==========================
``token-mean``              Σ_{i,t} ℓ m                      Σ_{i,t} m
``seq-mean-token-mean``     Σ_i (1/L_i) Σ_t ℓ m              N_ne
``seq-mean-token-sum``      Σ_{i,t} ℓ m                      N_ne
``constant-normalized-sum`` Σ_{i,t} ℓ m                      N_ne · C (Dr. GRPO)
=========================== ================================ ==========================

Fully masked rows contribute nothing to any sum or denominator, so padding rows added to fill a
static shape change nothing (tunix and verl also skip empty rows; TRL's ``grpo`` divides by all
rows, which differs only when a row is empty). A fully masked batch gives ``(0, 0)``; divide with
:func:`finalize_loss`, which returns 0 there.
"""

from __future__ import annotations

from typing import Final

import jax
import jax.numpy as jnp

Array = jax.Array

TOKEN_MEAN: Final = "token-mean"
SEQ_MEAN_TOKEN_MEAN: Final = "seq-mean-token-mean"
SEQ_MEAN_TOKEN_SUM: Final = "seq-mean-token-sum"
CONSTANT_NORMALIZED_SUM: Final = "constant-normalized-sum"
AGGREGATION_MODES: Final = (
    TOKEN_MEAN,
    SEQ_MEAN_TOKEN_MEAN,
    SEQ_MEAN_TOKEN_SUM,
    CONSTANT_NORMALIZED_SUM,
)


def check_mode(mode: str, field: str = "aggregation") -> None:
    """Raise ``ValueError`` naming ``field`` if ``mode`` is not an aggregation mode."""
    if mode not in AGGREGATION_MODES:
        raise ValueError(f"{field} must be one of {AGGREGATION_MODES}, got {mode!r}")


def aggregation_weights(
    mask: Array, mode: str, norm_constant: float | None = None, dtype=jnp.float32
) -> tuple[Array, Array]:
    """Per-token weights ``w[B,T]`` and denominator ``D`` (scalar) of an aggregation mode.

    ``loss_sum = Σ w·ℓ``. The weights are constants (no gradient flows through the mask).

    Args:
      mask: ``[B, T]`` 0/1 (any dtype).
      mode: one of :data:`AGGREGATION_MODES`.
      norm_constant: ``C`` of ``constant-normalized-sum``; ``None`` means the padded width
        ``T`` (tunix ``sequence-mean-token-scale`` default; TRL uses ``max_completion_length``,
        equal to ``T`` when batches are padded to the maximum length).
      dtype: floating dtype of the weights.

    Returns:
      ``(w[B,T], D scalar)`` in ``dtype``.
    """
    check_mode(mode)
    if mask.ndim != 2:
        raise ValueError(f"mask must be [B, T], got shape {mask.shape}")
    m = (mask != 0).astype(dtype)
    lengths = jnp.sum(m, axis=1)  # [B]
    nonempty = (lengths > 0).astype(dtype)
    if mode == TOKEN_MEAN:
        return m, jnp.sum(m)
    if mode == SEQ_MEAN_TOKEN_MEAN:
        inv_len = 1.0 / jnp.maximum(lengths, 1.0)
        return m * inv_len[:, None], jnp.sum(nonempty)
    if mode == SEQ_MEAN_TOKEN_SUM:
        return m, jnp.sum(nonempty)
    # constant-normalized-sum
    c = float(mask.shape[1]) if norm_constant is None else float(norm_constant)
    if not c > 0:
        raise ValueError(f"norm_constant must be > 0, got {norm_constant!r}")
    return m, jnp.sum(nonempty) * c


def aggregate(
    per_token: Array, mask: Array, mode: str, norm_constant: float | None = None
) -> tuple[Array, Array]:
    """Aggregate a per-token loss ``ℓ[B,T]`` into ``(sum, denominator)``.

    Masked positions contribute exactly 0 to the value and to the gradient, whatever
    ``per_token`` holds there (selected away with ``jnp.where``, so even ``inf`` is dropped).
    See the module docstring for the formulas.
    """
    if per_token.shape != mask.shape:
        raise ValueError(f"per_token {per_token.shape} and mask {mask.shape} must match")
    w, denom = aggregation_weights(
        mask, mode, norm_constant, jnp.promote_types(per_token.dtype, jnp.float32)
    )
    safe = jnp.where(mask != 0, per_token, jnp.zeros_like(per_token))
    return jnp.sum(safe * w), denom


def finalize_loss(loss_sum: Array, denominator: Array) -> Array:
    """``loss_sum / denominator``, or 0 when the denominator is 0 (fully masked batch)."""
    ok = denominator > 0
    return jnp.where(ok, loss_sum / jnp.where(ok, denominator, 1.0), 0.0)
