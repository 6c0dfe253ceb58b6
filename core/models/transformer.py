"""A decoder-only transformer in Flax NNX: RoPE, RMSNorm, SwiGLU, fused QKV, KV cache.

Architecture (pre-norm, as in Llama; arXiv:2302.13971 Sec. 2.2):

    h_0 = E[tokens]
    h   = h + W_o · Attn(RoPE(q), RoPE(k), v),  [q, k, v] = RMSNorm(h) · W_qkv
    h   = h + W_down · (SiLU(x W_gate) ⊙ x W_up),  x = RMSNorm(h)
    logits = RMSNorm(h) · W_head                     (float32)

* RMSNorm: x / sqrt(mean(x²) + eps) · g (arXiv:1910.07467, Eq. 4), computed in float32.
* Rotary positions: RoFormer (arXiv:2104.09864, Eq. 34), "rotate-half" layout: dimension i
  is paired with i + D/2 and rotated by angle pos · θ^(-2i/D).
* SwiGLU feed-forward: arXiv:2002.05202, Eq. 6 (FFN_SwiGLU, no biases).

Padding convention (left-padded prompts, shared with ``cliffjax.models.llama``): a token whose
position is negative is padding. No query attends to it as a key, and RoPE rotates by
``max(position, 0)``. The cache keeps the position of every slot (``pos``, -1 when empty or
padding), so a query in slot ``i`` sees slot ``j`` iff ``j <= i`` and ``pos[b, j] >= 0``.
With no negative position this is plain causal attention, bit for bit.

Parameter paths are flat and predictable, so later partition rules can match them by name:

    embed.embedding                 [V, d]           ("vocab", "embed")
    layers.{i}.attn_norm.scale      [d]              ("embed",)
    layers.{i}.attn.qkv             [d, 3, H, Dh]    ("embed", None, "heads", "head_dim")
    layers.{i}.attn.out             [H, Dh, d]       ("heads", "head_dim", "embed")
    layers.{i}.mlp_norm.scale       [d]              ("embed",)
    layers.{i}.mlp.gate_up          [d, 2, F]        ("embed", None, "mlp")
    layers.{i}.mlp.down             [F, d]           ("mlp", "embed")
    final_norm.scale                [d]              ("embed",)
    lm_head                         [d, V]           ("embed", "vocab")

The logical axis names are stored as ``out_sharding`` metadata only; building with no mesh
needs ``nnx.use_eager_sharding(False)`` (``cliffjax.models.policy.make_policy`` does this).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

Array = jax.Array

_DTYPES = ("float32", "bfloat16", "float16")


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Size and numerics of the decoder-only transformer.

    Attributes:
      vocab_size: number of token ids (the tokenizer's vocabulary size).
      max_seq_len: longest sequence (prompt + completion) the model is used on; bounds the
        KV cache and documents the RoPE range used in training.
      d_model: residual stream width d.
      n_layers: number of transformer blocks.
      n_heads: attention heads H; head dimension is d_model / n_heads and must be even (RoPE).
      d_ff: hidden width F of the SwiGLU feed-forward.
      rope_theta: RoPE base θ.
      norm_eps: epsilon inside RMSNorm's square root.
      dtype: compute dtype of activations and matmuls ("float32", "bfloat16", "float16").
        Logits are always returned in float32.
      param_dtype: storage dtype of the parameters.
      init_std: standard deviation of the embedding init; matrices use 1/sqrt(fan_in) and the
        residual output projections an extra 1/sqrt(2·n_layers) (GPT-2 style).
    """

    vocab_size: int
    max_seq_len: int = 64
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 512
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    dtype: str = "float32"
    param_dtype: str = "float32"
    init_std: float = 1.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_seq_len", "d_model", "n_layers", "n_heads", "d_ff"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"TransformerConfig.{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(
                f"TransformerConfig.d_model ({self.d_model}) must be divisible by "
                f"n_heads ({self.n_heads})"
            )
        if (self.d_model // self.n_heads) % 2 != 0:
            raise ValueError(
                "TransformerConfig.n_heads must leave an even head dimension for RoPE, got "
                f"d_model/n_heads = {self.d_model // self.n_heads}"
            )
        if not self.rope_theta > 0:
            raise ValueError(f"TransformerConfig.rope_theta must be > 0, got {self.rope_theta}")
        if not self.norm_eps > 0:
            raise ValueError(f"TransformerConfig.norm_eps must be > 0, got {self.norm_eps}")
        if not self.init_std > 0:
            raise ValueError(f"TransformerConfig.init_std must be > 0, got {self.init_std}")
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in _DTYPES:
                raise ValueError(
                    f"TransformerConfig.{name} must be one of {_DTYPES}, got {getattr(self, name)!r}"
                )

    @property
    def head_dim(self) -> int:
        """Per-head width Dh = d_model / n_heads."""
        return self.d_model // self.n_heads

    def num_params(self) -> int:
        """Exact parameter count (embedding and untied output head included)."""
        d, f, v = self.d_model, self.d_ff, self.vocab_size
        per_layer = 2 * d + 3 * d * d + d * d + 2 * d * f + f * d
        return v * d + self.n_layers * per_layer + d + d * v


# Presets: "tiny" for tests, "small" is the calibrated CPU default (~0.53M parameters with an
# 18-20 token vocabulary), "base100m" ~100M parameters for accelerators.
PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(d_model=32, n_layers=2, n_heads=2, d_ff=64),
    "small": dict(d_model=128, n_layers=2, n_heads=4, d_ff=512),
    "base100m": dict(d_model=768, n_layers=12, n_heads=12, d_ff=2560),
}


def preset_config(
    name: str, vocab_size: int, max_seq_len: int = 64, **overrides
) -> TransformerConfig:
    """A ``TransformerConfig`` from a named preset ("tiny", "small", "base100m")."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {name!r}")
    fields = {**PRESETS[name], **overrides}
    return TransformerConfig(vocab_size=vocab_size, max_seq_len=max_seq_len, **fields)


class KVCache(NamedTuple):
    """Fixed-size key/value cache with per-slot positions.

    Attributes:
      k: one ``[B, H, T, Dh]`` array per layer (T = cache length, static; keys after RoPE).
      v: same shapes as ``k``.
      pos: ``[B, T]`` int32 position of the token in each slot; -1 for empty or padding slots.
      index: int32 scalar, the number of slots already written; the next call writes its
        ``S`` new keys at slots ``[index, index + S)`` and attends to slots ``< index + S``
        (causally within the new chunk) whose ``pos`` is >= 0.
    """

    k: tuple[Array, ...]
    v: tuple[Array, ...]
    pos: Array
    index: Array


def init_kv_cache(cfg: TransformerConfig, batch: int, max_len: int, dtype=None) -> KVCache:
    """An empty cache of ``max_len`` slots (zeros, ``pos = -1``, index 0).

    ``dtype`` (keys and values) defaults to ``cfg.dtype``; a ``bfloat16`` cache halves the
    memory the decode steps read, at bfloat16 rounding of keys and values.
    """
    dtype = jnp.dtype(cfg.dtype if dtype is None else dtype)
    shape = (batch, cfg.n_heads, max_len, cfg.head_dim)
    zeros = tuple(jnp.zeros(shape, dtype) for _ in range(cfg.n_layers))
    return KVCache(
        k=zeros,
        v=tuple(jnp.zeros(shape, dtype) for _ in range(cfg.n_layers)),
        pos=jnp.full((batch, max_len), -1, jnp.int32),
        index=jnp.zeros((), jnp.int32),
    )


def grow_kv_cache(cache: KVCache, max_len: int) -> KVCache:
    """The same cache with ``max_len >= T`` slots: new slots empty (zeros, ``pos = -1``)."""
    t = cache.pos.shape[1]
    if max_len < t:
        raise ValueError(f"grow_kv_cache: max_len must be >= the cache length {t}, got {max_len}")
    pad = lambda x: jnp.pad(x, ((0, 0), (0, 0), (0, max_len - t), (0, 0)))
    return KVCache(
        k=tuple(pad(x) for x in cache.k),
        v=tuple(pad(x) for x in cache.v),
        pos=jnp.pad(cache.pos, ((0, 0), (0, max_len - t)), constant_values=-1),
        index=cache.index,
    )


class _NormalStream:
    """Hands out consecutive slices of one standard-normal draw as parameter initial values.

    One ``jax.random.normal`` call for the whole model instead of one per parameter: XLA's
    CPU compile time of threefry grows with the number of distinct shapes (~11 s for a dozen
    shapes on a loaded 2-core machine, versus well under a second for one flat draw).
    """

    def __init__(self, key: Array, size: int) -> None:
        self.flat = jax.random.normal(key, (size,), jnp.float32)
        self.offset = 0

    def take(self, shape: tuple[int, ...], std: float, dtype, axes: tuple) -> nnx.Param:
        n = math.prod(shape)
        if self.offset + n > self.flat.shape[0]:
            raise ValueError("initialiser stream exhausted (num_params() is out of date)")
        value = self.flat[self.offset : self.offset + n].reshape(shape) * std
        self.offset += n
        return nnx.Param(value.astype(dtype), out_sharding=axes)


class RMSNorm(nnx.Module):
    """RMSNorm (arXiv:1910.07467, Eq. 4): y = x / sqrt(mean(x²) + eps) · scale, in float32."""

    def __init__(self, dim: int, eps: float, param_dtype) -> None:
        self.eps = eps
        self.scale = nnx.Param(jnp.ones((dim,), param_dtype), out_sharding=("embed",))

    def __call__(self, x: Array) -> Array:
        x32 = x.astype(jnp.float32)
        inv = jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        scale = self.scale[...].astype(jnp.float32).reshape((1,) * (x.ndim - 1) + (-1,))
        return (x32 * inv * scale).astype(x.dtype)


def _rows(x: Array) -> Array:
    """``[B, S, ...] -> [B·S, ...]``: every projection is one ``[B·S, d_in] × W`` matmul.

    Performance only (same products): XLA:CPU ran ``bsd,dtf->bstf``-style dots, whose weight
    gradient contracts over both B and S, about 2x slower in the backward pass than the same
    product on merged rows (SwiGLU forward+backward 60 -> 39 ms at 256x9 tokens, d=128;
    docs/benchmarks.md). Weights keep their shapes, so their partition rules are unchanged;
    merging the leading (batch) axis with S keeps a batch sharding on the merged axis.
    """
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def rope(x: Array, positions: Array, theta: float) -> Array:
    """Rotary position embedding (arXiv:2104.09864, Eq. 34), rotate-half layout.

    Args:
      x: ``[B, S, H, Dh]``.
      positions: ``[B, S]`` int32 absolute positions; negative (padding) rotates by 0.
    Returns:
      ``x`` rotated, same shape and dtype. Angles are computed in float32.
    """
    half = x.shape[-1] // 2
    inv_freq = theta ** (-jnp.arange(half, dtype=jnp.float32) / half)  # θ^(-2i/Dh)
    pos = jnp.maximum(positions, 0).astype(jnp.float32)
    angles = pos[:, :, None] * inv_freq[None, None, :]  # [B, S, half]
    sin = jnp.sin(angles)[:, :, None, :]
    cos = jnp.cos(angles)[:, :, None, :]
    x32 = x.astype(jnp.float32)
    x1, x2 = x32[..., :half], x32[..., half:]
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x.dtype)


class Attention(nnx.Module):
    """Causal multi-head self-attention with a fused QKV projection and an optional KV cache."""

    def __init__(self, cfg: TransformerConfig, init: _NormalStream) -> None:
        d, h, dh = cfg.d_model, cfg.n_heads, cfg.head_dim
        pdt = jnp.dtype(cfg.param_dtype)
        self.theta = cfg.rope_theta
        self.dtype = jnp.dtype(cfg.dtype)
        self.qkv = init.take(
            (d, 3, h, dh), 1 / math.sqrt(d), pdt, ("embed", None, "heads", "head_dim")
        )
        out_std = 1 / math.sqrt(d) / math.sqrt(2 * cfg.n_layers)
        self.out = init.take((h, dh, d), out_std, pdt, ("heads", "head_dim", "embed"))

    def __call__(
        self,
        x: Array,
        positions: Array,
        cache_kv: tuple[Array, Array] | None,
        index: Array,
        key_pos: Array,
        last_only: bool = False,
    ) -> tuple[Array, tuple[Array, Array] | None]:
        """Attention output ``[B, S, d]`` (``[B, 1, d]`` for the last query if ``last_only``).

        ``key_pos [B, T]`` are the positions of the keys (the cache's ``pos`` after writing
        this chunk, or ``positions`` with no cache); keys with a negative position are masked.
        """
        b, s = x.shape[:2]
        # Projections take the rows as one [B·S, d] matrix (see _rows).
        w_qkv = self.qkv[...].astype(self.dtype)
        rows = _rows(x)
        # One matmul per slice of the fused weight: slicing one fused product made the
        # backward pass pad the activation gradient back to [B·S, 3, H, Dh] (and [B·S, 2, F]
        # in SwiGLU); separate products keep every dot canonical (performance only).
        proj = [
            jnp.einsum("md,dhk->mhk", rows, w_qkv[:, j]).reshape(b, s, *w_qkv.shape[2:])
            for j in range(3)
        ]
        k = rope(proj[1], positions, self.theta)
        v = proj[2]
        first_query = s - 1 if last_only else 0
        q = rope(proj[0][:, first_query:], positions[:, first_query:], self.theta)
        scale = 1.0 / math.sqrt(q.shape[-1])
        neg = jnp.finfo(jnp.float32).min
        if cache_kv is None:
            # Plain causal pass (training, scoring): query i may see keys j <= i.
            causal = jnp.arange(s, dtype=jnp.int32)[None, :] <= jnp.arange(s)[first_query:, None]
            allowed = causal[None] & (key_pos >= 0)[:, None, :]  # [B, S_q, S]
            scores = jnp.einsum("bshk,bthk->bhst", q, k, preferred_element_type=jnp.float32)
            scores = jnp.where(allowed[:, None], scores * scale, neg)
            probs = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
            ctx = jnp.einsum("bhst,bthk->bshk", probs, v)
            new_kv = None
        else:
            # The cache is laid out [B, H, T, Dh]: every (row, head) is one contiguous [T, Dh]
            # matrix, so a decode step is B·H matrix-vector products with no transposes of
            # the cache (2.7x faster than the broadcast-multiply formulation over a
            # [B, T, H, Dh] cache at B=64, T=517 on XLA:CPU; docs/benchmarks.md).
            k_cache, v_cache = cache_kv
            kt = jnp.swapaxes(k, 1, 2).astype(k_cache.dtype)  # [B, H, S, Dh]
            vt = jnp.swapaxes(v, 1, 2).astype(v_cache.dtype)
            keys = jax.lax.dynamic_update_slice(k_cache, kt, (0, 0, index, 0))
            values = jax.lax.dynamic_update_slice(v_cache, vt, (0, 0, index, 0))
            new_kv = (keys, values)
            t = keys.shape[2]
            # Query i of this chunk sits in slot index + i and may see slots j <= index + i;
            # slots beyond the written prefix are excluded by the same inequality.
            q_slot = index + jnp.arange(first_query, s, dtype=jnp.int32)
            causal = jnp.arange(t, dtype=jnp.int32)[None, :] <= q_slot[:, None]  # [S_q, T]
            allowed = causal[None] & (key_pos >= 0)[:, None, :]  # [B, S_q, T]
            qt = jnp.swapaxes(q, 1, 2)  # [B, H, S_q, Dh]
            scores = jnp.einsum(
                "bhsk,bhtk->bhst", qt, keys.astype(self.dtype), preferred_element_type=jnp.float32
            )
            scores = jnp.where(allowed[:, None], scores * scale, neg)
            probs = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
            ctx = jnp.swapaxes(
                jnp.einsum("bhst,bhtk->bhsk", probs, values.astype(self.dtype)), 1, 2
            )
        y = jnp.einsum("mhk,hkd->md", _rows(ctx), self.out[...].astype(self.dtype))
        return y.reshape(*ctx.shape[:2], -1), new_kv


class SwiGLU(nnx.Module):
    """SwiGLU feed-forward (arXiv:2002.05202, Eq. 6): W_down (SiLU(x W_gate) ⊙ x W_up)."""

    def __init__(self, cfg: TransformerConfig, init: _NormalStream) -> None:
        d, f = cfg.d_model, cfg.d_ff
        pdt = jnp.dtype(cfg.param_dtype)
        self.dtype = jnp.dtype(cfg.dtype)
        self.gate_up = init.take((d, 2, f), 1 / math.sqrt(d), pdt, ("embed", None, "mlp"))
        down_std = 1 / math.sqrt(f) / math.sqrt(2 * cfg.n_layers)
        self.down = init.take((f, d), down_std, pdt, ("mlp", "embed"))

    def __call__(self, x: Array) -> Array:
        w = self.gate_up[...].astype(self.dtype)
        rows = _rows(x)
        hidden = jax.nn.silu(rows @ w[:, 0]) * (rows @ w[:, 1])
        y = jnp.einsum("mf,fd->md", hidden, self.down[...].astype(self.dtype))
        return y.reshape(x.shape)


class Block(nnx.Module):
    """Pre-norm transformer block: h += Attn(RMSNorm(h)); h += SwiGLU(RMSNorm(h))."""

    def __init__(self, cfg: TransformerConfig, init: _NormalStream) -> None:
        pdt = jnp.dtype(cfg.param_dtype)
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps, pdt)
        self.attn = Attention(cfg, init)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps, pdt)
        self.mlp = SwiGLU(cfg, init)

    def __call__(self, h, positions, cache_kv, index, key_pos, last_only: bool = False):
        a, new_kv = self.attn(self.attn_norm(h), positions, cache_kv, index, key_pos, last_only)
        h = (h[:, -1:] if last_only else h) + a
        h = h + self.mlp(self.mlp_norm(h))
        return h, new_kv


class Embed(nnx.Module):
    """Token embedding table ``embedding[V, d]``."""

    def __init__(self, cfg: TransformerConfig, init: _NormalStream) -> None:
        shape = (cfg.vocab_size, cfg.d_model)
        self.embedding = init.take(
            shape, cfg.init_std, jnp.dtype(cfg.param_dtype), ("vocab", "embed")
        )

    def __call__(self, tokens: Array, dtype) -> Array:
        return jnp.take(self.embedding[...], tokens, axis=0).astype(dtype)


def _check_logits_from(logits_from: int, s: int, last_only: bool = False) -> None:
    """``logits_from`` must be an int in ``[0, S)`` (and not combined with ``last_only``)."""
    if not isinstance(logits_from, int) or isinstance(logits_from, bool):
        raise ValueError(f"logits_from must be a static int, got {logits_from!r}")
    if not 0 <= logits_from < s:
        raise ValueError(f"logits_from must be in [0, S={s}), got {logits_from}")
    if logits_from and last_only:
        raise ValueError("logits_from and last_only cannot be combined")


class Transformer(nnx.Module):
    """Decoder-only transformer; ``model(tokens, positions, cache) -> (logits, cache)``."""

    def __init__(self, cfg: TransformerConfig, key: Array) -> None:
        self.config = cfg
        init = _NormalStream(key, cfg.num_params())
        self.embed = Embed(cfg, init)
        self.layers = nnx.List([Block(cfg, init) for _ in range(cfg.n_layers)])
        self.final_norm = RMSNorm(cfg.d_model, cfg.norm_eps, jnp.dtype(cfg.param_dtype))
        self.lm_head = init.take(
            (cfg.d_model, cfg.vocab_size),
            1 / math.sqrt(cfg.d_model),
            jnp.dtype(cfg.param_dtype),
            ("embed", "vocab"),
        )

    def init_cache(self, batch: int, max_len: int, dtype=None) -> KVCache:
        """An empty ``KVCache`` for this model (see ``init_kv_cache``)."""
        return init_kv_cache(self.config, batch, max_len, dtype)

    def grow_cache(self, cache: KVCache, max_len: int) -> KVCache:
        """``cache`` with ``max_len`` slots (see ``grow_kv_cache``); the sampler grows the
        cache in steps so that decode steps attend over about the written prefix only."""
        return grow_kv_cache(cache, max_len)

    def prefill(self, tokens: Array, positions: Array, cache: KVCache) -> tuple[Array, KVCache]:
        """Fill the cache with a prompt and return only the last position's logits ``[B, 1, V]``.

        Same cache and same last-position logits as ``__call__``, but the last block runs its
        attention output, residual and feed-forward for the final position only (the earlier
        positions' outputs of that block feed nothing): about a third less work for short
        prompts on the 2-layer model. The sampler uses it when a model provides it.
        """
        return self(tokens, positions, cache, last_only=True)

    def __call__(
        self,
        tokens: Array,
        positions: Array,
        cache: KVCache | None = None,
        last_only: bool = False,
        logits_from: int = 0,
    ) -> tuple[Array, KVCache | None]:
        """Logits of the next token at every position (from ``logits_from`` on).

        Args:
          tokens: ``[B, S]`` int32 token ids.
          positions: ``[B, S]`` int32 absolute positions (RoPE); negative marks padding, which
            no query attends to (module docstring).
          cache: ``None`` for a plain causal forward pass over ``tokens``; or a ``KVCache``
            whose ``index`` slots are filled: the new keys are written at
            ``[index, index + S)`` and attention covers the cached prefix.
          last_only: return logits for the last position only (``[B, 1, V]``); see ``prefill``.
          logits_from: static; return logits for positions ``logits_from .. S-1`` only
          (``[B, S - logits_from, V]``), the same values as ``logits[:, logits_from:]`` of the
          full output, without the output head's work (and its gradient) on earlier positions.
        Returns:
          ``(logits [B, S, V] float32, new cache or None)``.
        """
        if tokens.ndim != 2 or positions.shape != tokens.shape:
            raise ValueError(
                f"tokens and positions must both be [B, S]; got {tokens.shape} and {positions.shape}"
            )
        _check_logits_from(logits_from, tokens.shape[1], last_only)
        dtype = jnp.dtype(self.config.dtype)
        h = self.embed(tokens, dtype)
        positions = positions.astype(jnp.int32)
        if cache is None:
            index = jnp.zeros((), jnp.int32)
            key_pos = positions
        else:
            index = cache.index
            key_pos = jax.lax.dynamic_update_slice(cache.pos, positions, (0, index))
        new_k, new_v = [], []
        n_layers = len(self.layers)
        for i, layer in enumerate(self.layers):
            layer_kv = None if cache is None else (cache.k[i], cache.v[i])
            trim = last_only and i == n_layers - 1
            h, kv = layer(h, positions, layer_kv, index, key_pos, trim)
            if kv is not None:
                new_k.append(kv[0])
                new_v.append(kv[1])
        h = self.final_norm(h[:, logits_from:] if logits_from else h)
        logits = jnp.einsum(
            "md,dv->mv",
            _rows(h),
            self.lm_head[...].astype(dtype),
            preferred_element_type=jnp.float32,
        ).reshape(*h.shape[:2], -1)
        if cache is None:
            return logits, None
        new_cache = KVCache(
            k=tuple(new_k), v=tuple(new_v), pos=key_pos, index=cache.index + tokens.shape[1]
        )
        return logits, new_cache
