"""The answer set of the digit-answer tasks and exact distributions over it.

Completions are compared at the sequence level over the *answer set* ``A_L``: every digit
string of length 1..L followed by EOS (``Σ_k 10^k`` strings); every other completion (no EOS
within L+1 tokens, a non-digit, an empty answer) is one lumped outcome "other".
``π(a|x) = Π_t π(a_t | x, a_<t)`` is computed exactly by scoring all candidates, so for a
prompt the policy is a distribution over ``|A_L| + 1`` outcomes (a coarsening of the full
sequence distribution: distances on it are lower bounds on the full-sequence ones, and equal
to them when "other" has the same mass in both).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cliffjax.sampling import score

Array = jax.Array
PyTree = Any


def num_answers(max_digits: int) -> int:
    """``|A_L| = Σ_{k=1..L} 10^k``: digit strings of length 1..L."""
    return sum(10**k for k in range(1, max_digits + 1))


def answer_candidates(
    max_digits: int, width: int, digit0_id: int, eos_id: int, pad_id: int
) -> tuple[Array, Array]:
    """All answers of ``A_L`` as completions: ``(tokens [A, width] int32, mask [A, width])``.

    Order: by length, then by value (``"0".."9"``, ``"00".."99"``, ...); answer ``i`` is the
    one :func:`answer_index` returns ``i`` for. The mask covers the digits and the EOS.
    """
    if width < max_digits + 1:
        raise ValueError(f"completion width {width} cannot hold {max_digits} digits plus EOS")
    rows, masks = [], []
    for k in range(1, max_digits + 1):  # host-side numpy: no compile for a constant table
        values = np.arange(10**k)
        digits = (values[:, None] // 10 ** np.arange(k - 1, -1, -1)[None, :]) % 10 + digit0_id
        row = np.full((10**k, width), pad_id, np.int32)
        row[:, :k] = digits
        row[:, k] = eos_id
        mask = np.zeros((10**k, width), np.int32)
        mask[:, : k + 1] = 1
        rows.append(row)
        masks.append(mask)
    return jnp.asarray(np.concatenate(rows)), jnp.asarray(np.concatenate(masks))


def answer_index(completions: Array, max_digits: int, digit0_id: int, eos_id: int) -> Array:
    """Index in ``A_L`` of each completion ``[B, N]``, or ``-1`` if it is not an answer.

    A completion is an answer iff its first EOS is at position ``k ∈ [1, L]`` and the ``k``
    tokens before it are digits. Its index is ``offset_k + value`` with
    ``offset_k = Σ_{j=1}^{k-1} 10^j`` (the answers of fewer digits come first).
    """
    _b, n = completions.shape
    is_eos = completions == eos_id
    has_eos = jnp.any(is_eos, axis=1)
    k = jnp.argmax(is_eos, axis=1)  # position of the first EOS
    d = completions - digit0_id
    is_digit = (d >= 0) & (d <= 9)
    pos = jnp.arange(n)[None, :]
    before = pos < k[:, None]
    digits_ok = jnp.all(is_digit | ~before, axis=1)
    ok = has_eos & (k >= 1) & (k <= max_digits) & digits_ok
    # value = Σ_{t<k} d_t 10^(k-1-t), computed with a per-row exponent.
    expo = jnp.clip(k[:, None] - 1 - pos, 0, max_digits)
    value = jnp.sum(jnp.where(before, jnp.clip(d, 0, 9) * (10**expo), 0), axis=1)
    offsets = jnp.asarray(
        [0] + [sum(10**j for j in range(1, kk)) for kk in range(1, max_digits + 1)], jnp.int32
    )
    idx = offsets[jnp.clip(k, 0, max_digits)] + value
    return jnp.where(ok, idx, -1).astype(jnp.int32)


def sequence_logprob(
    graphdef: Any, params: PyTree, prompts: Array, completions: Array, mask: Array
) -> Array:
    """``log π(y|x) = Σ_t mask_t · log π(y_t | x, y_<t)``, ``[B]`` float32."""
    logp = score(graphdef, params, prompts, completions)
    return jnp.sum(logp * mask.astype(logp.dtype), axis=1)


def answer_distribution(
    graphdef: Any, params: PyTree, prompts: Array, candidates: Array, cand_mask: Array
) -> Array:
    """Exact ``[E, A + 1]`` distribution over ``A_L`` ∪ {other} for each of ``E`` prompts.

    Column ``A`` is the lumped "other" outcome ``1 − Σ_a π(a|x)`` (clipped at 0 against
    float error).
    """
    e, a = prompts.shape[0], candidates.shape[0]
    pr = jnp.repeat(prompts, a, axis=0)
    cd = jnp.tile(candidates, (e, 1))
    cm = jnp.tile(cand_mask, (e, 1))
    logp = sequence_logprob(graphdef, params, pr, cd, cm).reshape(e, a)
    p = jnp.exp(logp)
    other = jnp.clip(1.0 - jnp.sum(p, axis=1, keepdims=True), 0.0, 1.0)
    return jnp.concatenate([p, other], axis=1)


def candidate_rewards(
    task: Any, prompts: Array, meta: dict, cand: Array, cmask: Array
) -> tuple[Array, dict[str, Array]]:
    """Task rewards ``[n, A]`` of every answer for every prompt, and their components
    (``{name: [n, A]}``)."""
    n, a = prompts.shape[0], cand.shape[0]

    @jax.jit  # one compile instead of one per eager op
    def rewards(meta, cand, cmask):
        rep = jax.tree.map(lambda x: jnp.repeat(x, a, axis=0), meta)
        r, comps = task.reward(jnp.tile(cand, (n, 1)), jnp.tile(cmask, (n, 1)), rep)
        return r.reshape(n, a).astype(jnp.float32), {k: v.reshape(n, a) for k, v in comps.items()}

    return rewards(meta, cand, cmask)
