"""Reward shaping used with the objectives.

DAPO's soft overlong punishment (Yu et al., arXiv 2503.14476 eq. 13), added to the correctness
reward::

    R_len(y) = 0                              if |y| ≤ L_max − L_cache
             = ((L_max − L_cache) − |y|)/L_cache  if L_max − L_cache < |y| ≤ L_max
             = −1                             if |y| > L_max

Test vectors (paper setting L_max = 20480, L_cache = 4096): 16384 → 0, 18432 → −0.5,
20480 → −1. TRL's ``get_soft_overlong_punishment`` computes the same (floor −1, lengths in
tokens). tunix's DAPO ``reward_shaping`` has no −1 floor (lengths beyond L_max keep decreasing
linearly) and counts characters; verl multiplies by a ``penalty_factor``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def soft_overlong_penalty(lengths: Array, max_len: int, cache_len: int) -> Array:
    """DAPO eq. 13 penalty ``[B]`` (≤ 0) for completion lengths ``[B]`` (tokens).

    Args:
      lengths: ``[B]`` completion lengths (int or float).
      max_len: L_max, the maximum generation length.
      cache_len: L_cache, the soft punishment interval (0 < cache_len ≤ max_len).
    """
    if not 0 < cache_len <= max_len:
        raise ValueError(f"cache_len must be in (0, max_len={max_len}], got {cache_len!r}")
    length = jnp.asarray(lengths)
    length = length.astype(jnp.promote_types(length.dtype, jnp.float32))
    expected = max_len - cache_len
    ramp = (expected - length) / cache_len
    return jnp.where(length <= expected, 0.0, jnp.where(length <= max_len, ramp, -1.0))
