"""Jit-compiled autoregressive sampling with a KV cache and static shapes.

    out = sample(graphdef, params, prompts[B, P], key, SamplingConfig(max_new_tokens=N, ...))

Algorithm (all shapes static, one compile per (B, P, N, config)):

1. Prefill: one forward pass over the prompt writes slots ``[0, P)`` of the KV cache; the
   logits at the last prompt slot give the first token's distribution.
2. ``lax.scan`` over the remaining ``N - 1`` steps: feed the previous token at position
   ``P + t - 1`` (t = 1..N-1, the step index; ``L_b + t - 1`` for padded prompts), then
   sample token ``t`` from its logits. The last sampled token is never fed back, so no
   forward pass is wasted. For models with ``grow_cache`` the steps run in segments
   (``decode_segments``: 64, 128, 256, ... steps) and the cache grows between them to
   ``P`` + the segment's last step, so a step attends over fewer than about twice the slots
   written so far instead of all ``P + N - 1``; a segment is skipped (padding written) once
   every row has stopped. Other models get one cache of ``P + N - 1`` slots.
3. Each step: ``l = logits / temperature``; top-k keeps the k largest (``top_k=0``: all);
   top-p keeps the smallest set of most likely tokens whose probability reaches ``top_p``
   (nucleus sampling, arXiv:1904.09751 Sec. 3.1); then ``tok ~ Categorical(softmax(l))``.
   ``temperature == 0`` is greedy (argmax of the raw logits; ties go to the lowest id).
4. After a sequence emits ``eos_id`` (or one of ``eos_ids``) it is done: later slots hold
   ``pad_id``, mask 0, logp 0. The completion mask includes the EOS token itself.

Variable-length prompts: pass ``prompt_mask[n, P]`` (1 = real token) with the prompts left
padded (every row's padding before its tokens). Row ``b`` with ``L_b`` real tokens gets
positions ``-1`` on its padding (never attended to; see the padding convention of
``cliffjax.models.transformer``), ``0 .. L_b - 1`` on its tokens, and completion token ``t``
at position ``L_b + t``. Each row then decodes exactly as it would alone. Without a mask
every prompt token is real (``L_b = P``) and the program is the one of a plain batch.

Log-probabilities: ``logp[b, t] = log q(tok_t | prefix)`` where ``q`` is the *sampling*
distribution above (temperature-scaled, filtered, renormalised). It equals the policy's
log-prob ``log softmax(logits)[tok]`` only when ``temperature == 1``, ``top_k == 0`` and
``top_p == 1``; in any other case use ``cliffjax.sampling.scoring.score`` for the policy's
log-probs (PPO ratios need those). For greedy decoding (temperature 0) the returned logp is
the policy's unfiltered temperature-1 log-prob of the argmax token (q itself is a point mass).

Randomness: step t uses ``jax.random.fold_in(key, t)``, so the same key gives the same output.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """How to sample completions.

    Attributes:
      max_new_tokens: N, the number of completion slots (static).
      temperature: softmax temperature; 0 means greedy decoding.
      top_k: keep only the k most likely tokens before sampling; 0 keeps all.
      top_p: nucleus mass in (0, 1]; 1 keeps all tokens.
      eos_id: end-of-sequence token id; generation of a row stops after it.
      eos_ids: further stop ids that end a row like ``eos_id`` (e.g. Qwen's ``<|im_end|>``
        and ``<|endoftext|>``); empty by default.
      pad_id: token written after EOS (masked out).
      group_size: G completions per prompt. ``prompts[n, P]`` gives ``n·G`` rows, the G
        completions of prompt i in rows ``i·G .. i·G + G - 1`` (groups contiguous, as the
        objectives expect). The prompt is prefilled once and its cache copied G times, which
        is cheaper than sampling ``jnp.repeat(prompts, G, 0)`` with ``group_size=1`` (same
        distribution, different random draws).
      cache_block: decode in segments whose cache grows ``block, 2·block, ...`` new slots
        (``decode_segments``), for models with ``grow_cache``; 0: one cache of ``P + N - 1``
        slots from the start. Same tokens either way (masked slots add exact zeros).
      cache_dtype: dtype of the cached keys and values ("float32", "bfloat16", ...); None:
        the model's compute dtype. "bfloat16" halves the memory each decode step reads, at
        the cost of bfloat16 rounding of keys and values (the log-probs then differ from
        ``score`` by that rounding).
    """

    max_new_tokens: int
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    eos_id: int = 1
    eos_ids: tuple[int, ...] = ()
    pad_id: int = 0
    group_size: int = 1
    cache_block: int = 64
    cache_dtype: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(
                f"SamplingConfig.max_new_tokens must be an int >= 1, got {self.max_new_tokens!r}"
            )
        if not self.temperature >= 0:
            raise ValueError(f"SamplingConfig.temperature must be >= 0, got {self.temperature}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"SamplingConfig.top_k must be an int >= 0, got {self.top_k!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingConfig.top_p must be in (0, 1], got {self.top_p}")
        for name in ("eos_id", "pad_id"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"SamplingConfig.{name} must be an int >= 0")
        if not isinstance(self.eos_ids, tuple) or not all(
            isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in self.eos_ids
        ):
            raise ValueError(
                f"SamplingConfig.eos_ids must be a tuple of ints >= 0, got {self.eos_ids!r}"
            )
        if not isinstance(self.cache_block, int) or self.cache_block < 0:
            raise ValueError(
                f"SamplingConfig.cache_block must be an int >= 0, got {self.cache_block!r}"
            )
        if self.cache_dtype is not None and self.cache_dtype not in (
            "float32",
            "bfloat16",
            "float16",
        ):
            raise ValueError(
                "SamplingConfig.cache_dtype must be None, 'float32', 'bfloat16' or 'float16', "
                f"got {self.cache_dtype!r}"
            )
        if not isinstance(self.group_size, int) or self.group_size < 1:
            raise ValueError(
                f"SamplingConfig.group_size must be an int >= 1, got {self.group_size!r}"
            )

    @property
    def stop_ids(self) -> tuple[int, ...]:
        """All ids that end a row: ``eos_id`` then ``eos_ids`` (duplicates removed)."""
        return tuple(dict.fromkeys((self.eos_id, *self.eos_ids)))


class SampleOutput(NamedTuple):
    """Result of ``sample``.

    Attributes:
      tokens: ``[B, P + N]`` int32, prompt (with its left padding, if any) then completion.
      completion: ``[B, N]`` int32 sampled tokens (``pad_id`` after EOS).
      completion_mask: ``[B, N]`` int32, 1 up to and including the first EOS, 0 after.
      logp: ``[B, N]`` float32 log-probs under the sampling distribution (module docstring),
        0 where the mask is 0.
    """

    tokens: Array
    completion: Array
    completion_mask: Array
    logp: Array


def filter_logits(logits: Array, top_k: int, top_p: float) -> Array:
    """Set logits outside the top-k / nucleus sets to -inf.

    Args:
      logits: ``[B, V]`` float32 (already divided by the temperature).
      top_k: 0 for no top-k filtering.
      top_p: 1 for no nucleus filtering.
    Returns:
      ``[B, V]`` logits; at least the argmax survives in every row.
    """
    neg_inf = jnp.asarray(-jnp.inf, logits.dtype)
    if 0 < top_k < logits.shape[-1]:
        kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
        logits = jnp.where(logits < kth, neg_inf, logits)
    if top_p < 1.0:
        sorted_logits = jnp.sort(logits, axis=-1)[:, ::-1]
        probs = jax.nn.softmax(sorted_logits, axis=-1)
        # Keep token j (in descending order) iff the mass strictly before it is < top_p: the
        # smallest prefix whose mass reaches top_p. The first token is always kept.
        mass_before = jnp.cumsum(probs, axis=-1) - probs
        keep = mass_before < top_p
        threshold = jnp.min(jnp.where(keep, sorted_logits, jnp.inf), axis=-1, keepdims=True)
        logits = jnp.where(logits < threshold, neg_inf, logits)
    return logits


def _choose(logits: Array, key: Array, cfg: SamplingConfig) -> tuple[Array, Array]:
    """One token per row and its log-prob (see the module docstring)."""
    if cfg.temperature == 0:
        tok = jnp.argmax(logits, axis=-1).astype(jnp.int32)
        logq = jax.nn.log_softmax(logits, axis=-1)
    else:
        scaled = filter_logits(logits / cfg.temperature, cfg.top_k, cfg.top_p)
        tok = jax.random.categorical(key, scaled, axis=-1).astype(jnp.int32)
        logq = jax.nn.log_softmax(scaled, axis=-1)
    logp = jnp.take_along_axis(logq, tok[:, None], axis=-1)[:, 0]
    return tok, logp


def is_stop(tok: Array, cfg: SamplingConfig) -> Array:
    """Boolean mask of ``tok`` (any shape) equal to one of ``cfg.stop_ids``."""
    ids = cfg.stop_ids
    hit = tok == ids[0]
    for e in ids[1:]:
        hit = hit | (tok == e)
    return hit


def prompt_positions(prompt_mask: Array | None, shape: tuple[int, int]) -> tuple[Array, Array]:
    """Per-row positions of (left-padded) prompts and the position of the first new token.

    Args:
      prompt_mask: ``[n, P]`` (1 = real token, 0 = padding, padding on the left) or None
        (every token real).
      shape: ``(n, P)``.
    Returns:
      ``(positions [n, P] int32, lengths [n] int32)``: ``positions = cumsum(mask) - 1`` on real
      tokens and ``-1`` on padding; ``lengths = sum(mask)``, the position that comes next.
      Without a mask, ``positions[b] = 0 .. P-1`` and ``lengths = P``.
    """
    n, p = shape
    if prompt_mask is None:
        positions = jnp.broadcast_to(jnp.arange(p, dtype=jnp.int32), (n, p))
        return positions, jnp.full((n,), p, jnp.int32)
    if prompt_mask.shape != (n, p):
        raise ValueError(
            f"prompt_mask must have the prompts' shape {(n, p)}, got {prompt_mask.shape}"
        )
    real = prompt_mask.astype(bool)
    count = jnp.cumsum(real.astype(jnp.int32), axis=1)
    positions = jnp.where(real, count - 1, -1).astype(jnp.int32)
    return positions, count[:, -1]


def check_prompt_mask(prompt_mask: Any) -> None:
    """Raise ``ValueError`` unless a concrete mask is 0/1, left padded, >= 1 real token per row.

    Traced masks (inside ``jit``) cannot be inspected and pass unchecked.
    """
    if prompt_mask is None or isinstance(prompt_mask, jax.core.Tracer):
        return
    m = np.asarray(prompt_mask)
    if m.ndim != 2:
        raise ValueError(f"prompt_mask must be [n, P], got shape {m.shape}")
    if not np.isin(m, (0, 1)).all():
        raise ValueError("prompt_mask must hold only 0 (padding) and 1 (real token)")
    if (np.diff(m.astype(np.int32), axis=1) < 0).any():
        raise ValueError("prompt_mask must be left padded: a 0 after a 1 in some row")
    if (m[:, -1] == 0).any():
        raise ValueError("prompt_mask must have at least one real token in every row")


def decode_segments(n: int, block: int) -> list[tuple[int, int, int]]:
    """Decode steps ``t = 1 .. n-1`` split into segments ``(t_first, t_last, slots)``.

    Step ``t`` feeds token ``t - 1`` into cache slot ``P + t - 1``, so a segment ending at
    ``t_last`` needs a cache of ``P + slots`` slots with ``slots = t_last``. Segment ends grow
    geometrically: ``block, 2·block, 4·block, ...`` capped at ``n - 1``; ``block = 0`` gives one
    segment (a cache of ``P + n - 1`` slots throughout). Each step then attends over fewer
    than about twice the slots written so far; there are ``O(log(n / block))`` segments, each
    one ``lax.scan`` (compiled separately).
    """
    if n <= 1:
        return []
    last = n - 1
    ends = [last] if block <= 0 else []
    end = block
    while block > 0 and end < last:
        ends.append(end)
        end *= 2
    if block > 0:
        ends.append(last)
    segs, first = [], 1
    for e in ends:
        segs.append((first, e, e))
        first = e + 1
    return segs


def sample_with_model(
    model: nnx.Module,
    prompts: Array,
    key: Array,
    cfg: SamplingConfig,
    prompt_mask: Array | None = None,
) -> SampleOutput:
    """``sample`` on a merged module (traceable; used inside ``sample``'s jit)."""
    if prompts.ndim != 2:
        raise ValueError(f"prompts must be [B, P], got shape {prompts.shape}")
    prompts = prompts.astype(jnp.int32)
    n_prompts, p = prompts.shape
    n = cfg.max_new_tokens
    # A model with ``grow_cache`` gets a cache that grows in segments (``decode_segments``),
    # so that a decode step attends over about the written prefix, not all P + N - 1 slots.
    grow = getattr(model, "grow_cache", None)
    segments = decode_segments(n, cfg.cache_block if grow is not None else 0)
    cache = model.init_cache(n_prompts, p + (segments[0][2] if segments else 0), cfg.cache_dtype)
    positions, lengths = prompt_positions(prompt_mask, (n_prompts, p))
    # A model may offer ``prefill`` (same cache, last-position logits only, less work).
    prefill = getattr(model, "prefill", model)
    logits, cache = prefill(prompts, positions, cache)
    last = logits[:, -1]
    if cfg.group_size > 1:
        rep = lambda x: jnp.repeat(x, cfg.group_size, axis=0)
        # Every non-scalar cache leaf has the batch as its leading axis (policy contract).
        cache = jax.tree.map(lambda x: rep(x) if x.ndim else x, cache)
        prompts, last, lengths = rep(prompts), rep(last), rep(lengths)
    b = prompts.shape[0]
    tok, logp = _choose(last, jax.random.fold_in(key, 0), cfg)
    done = is_stop(tok, cfg)
    ones = jnp.ones((b,), jnp.int32)

    def step(carry, t):
        cache, prev, done = carry
        # Token t-1 sits at position L + t - 1 (an off-by-one here still gives plausible text).
        pos = (lengths + (t - 1))[:, None].astype(jnp.int32)
        logits, cache = model(prev[:, None], pos, cache)
        tok, logp = _choose(logits[:, 0], jax.random.fold_in(key, t), cfg)
        live = ~done
        tok = jnp.where(live, tok, cfg.pad_id)
        logp = jnp.where(live, logp, 0.0)
        done = done | is_stop(tok, cfg)
        return (cache, tok, done), (tok, logp, live.astype(jnp.int32))

    if n > 1:
        carry = (cache, tok, done)
        pieces = []
        for k, (t0, t1, slots) in enumerate(segments):
            steps = jnp.arange(t0, t1 + 1, dtype=jnp.int32)
            if k > 0:
                carry = (grow(carry[0], p + slots), *carry[1:])

            def run(carry, steps=steps):
                return jax.lax.scan(step, carry, steps)

            def skip(carry, steps=steps):
                # Every row has finished: the remaining slots are padding (what ``run``
                # would write), and no forward pass is spent on them.
                shape = (steps.shape[0], b)
                return carry, (
                    jnp.full(shape, cfg.pad_id, jnp.int32),
                    jnp.zeros(shape, logp.dtype),
                    jnp.zeros(shape, jnp.int32),
                )

            if k == 0:
                carry, out = run(carry)
            else:
                carry, out = jax.lax.cond(jnp.all(carry[2]), skip, run, carry)
            pieces.append(out)
        toks, logps, masks = (jnp.concatenate(x, axis=0) for x in zip(*pieces))
        completion = jnp.concatenate([tok[:, None], toks.T], axis=1)
        logp = jnp.concatenate([logp[:, None], logps.T], axis=1)
        mask = jnp.concatenate([ones[:, None], masks.T], axis=1)
    else:
        completion, logp, mask = tok[:, None], logp[:, None], ones[:, None]
    tokens = jnp.concatenate([prompts, completion], axis=1)
    return SampleOutput(tokens, completion, mask, logp.astype(jnp.float32))


@partial(jax.jit, static_argnames=("cfg",))
def _sample_jit(graphdef, params, prompts, key, cfg, prompt_mask):
    return sample_with_model(nnx.merge(graphdef, params), prompts, key, cfg, prompt_mask)


def sample(
    graphdef: Any,
    params: Any,
    prompts: Array,
    key: Array,
    cfg: SamplingConfig,
    prompt_mask: Array | None = None,
) -> SampleOutput:
    """Sample ``cfg.max_new_tokens`` tokens after each prompt (module docstring).

    Args:
      graphdef, params: a split policy (``cliffjax.models.policy.Policy``); the module must have
        ``init_cache(batch, max_len)`` and ``__call__(tokens, positions, cache)``.
      prompts: ``[n, P]`` int32; ``B = n · cfg.group_size`` output rows.
      key: PRNG key; the same key gives the same output.
      cfg: ``SamplingConfig`` (static: a new config compiles a new program).
      prompt_mask: optional ``[n, P]`` (1 = real token) for left-padded prompts of different
        lengths (module docstring); None: every token is real. A concrete mask is checked
        (0/1, left padded, a real token in every row).
    Returns:
      ``SampleOutput(tokens [B,P+N], completion [B,N], completion_mask [B,N], logp [B,N])``.
    """
    check_prompt_mask(prompt_mask)
    return _sample_jit(graphdef, params, prompts, key, cfg, prompt_mask)
