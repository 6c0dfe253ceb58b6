"""Teacher-forced per-token log-probabilities of given completions (old / reference policy).

    logp[b, t] = log softmax(f_θ(x_b)[P - 1 + t])[c_b,t],   x_b = [prompt_b ; c_b]

where ``f_θ`` is one causal forward pass over prompt and completion (temperature 1, no
filtering: the policy's own log-probs, which PPO-style ratios and KL terms need). Values at
padded completion slots are computed like any other; callers multiply by the completion mask.
Both functions are pure and differentiable: call them inside ``jax.jit`` / ``jax.grad``.

Left-padded prompts of different lengths: pass ``prompt_mask[B, P]`` (1 = real token). Row
``b`` with ``L_b`` real tokens gets positions -1 on its padding (never attended to), ``0 ..
L_b - 1`` on its tokens and ``L_b + t`` on completion token ``t``, as in the sampler, so each
row scores as it would alone. Without a mask every prompt token is real.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from cliffjax.models.policy import apply
from cliffjax.sampling.sampler import prompt_positions

Array = jax.Array


def _completion_logits(
    graphdef: Any, params: Any, prompts: Array, completions: Array, prompt_mask: Array | None
) -> Array:
    p, n = prompts.shape[1], completions.shape[1]
    tokens = jnp.concatenate([prompts, completions], axis=1).astype(jnp.int32)
    if prompt_mask is None:
        positions = jnp.broadcast_to(jnp.arange(p + n, dtype=jnp.int32), tokens.shape)
    else:
        prompt_pos, lengths = prompt_positions(prompt_mask, prompts.shape)
        completion_pos = lengths[:, None] + jnp.arange(n, dtype=jnp.int32)[None, :]
        positions = jnp.concatenate([prompt_pos, completion_pos], axis=1)
    # Only the forward pass over the first P + N - 1 tokens is needed: the last token is
    # never a context for a scored token; and only the last N positions need the output head
    # (the prompt's logits would be sliced away, their head matmul and its gradient wasted).
    logits, _ = apply(graphdef, params, tokens[:, :-1], positions[:, :-1], logits_from=p - 1)
    return logits  # [B, N, V]; row t predicts completion token t


def score(
    graphdef: Any,
    params: Any,
    prompts: Array,
    completions: Array,
    prompt_mask: Array | None = None,
) -> Array:
    """Per-token log-probs ``[B, N]`` float32 of ``completions[B, N]`` after ``prompts[B, P]``.

    ``prompt_mask [B, P]`` (optional, 1 = real token) marks left padding (module docstring).
    """
    logits = _completion_logits(graphdef, params, prompts, completions, prompt_mask)
    logq = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(logq, completions[..., None].astype(jnp.int32), axis=-1)[..., 0]


def score_with_entropy(
    graphdef: Any,
    params: Any,
    prompts: Array,
    completions: Array,
    prompt_mask: Array | None = None,
) -> tuple[Array, Array]:
    """``(logp [B, N], entropy [B, N])``; entropy H_t = -Σ_v π(v|prefix) log π(v|prefix).

    ``prompt_mask`` as in ``score``.
    """
    logits = _completion_logits(graphdef, params, prompts, completions, prompt_mask)
    logq = jax.nn.log_softmax(logits, axis=-1)
    logp = jnp.take_along_axis(logq, completions[..., None].astype(jnp.int32), axis=-1)[..., 0]
    entropy = -jnp.sum(jnp.exp(logq) * logq, axis=-1)
    return logp, entropy
