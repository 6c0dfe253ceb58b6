"""The Llama / Qwen2 / Qwen3 decoder in Flax NNX, with a padding-aware KV cache.

    h_0 = E[tokens]
    h   = h + W_o · Attn(RoPE(n_q(q)), RoPE(n_k(k)), v),  q, k, v = RMSNorm(h) · W_{q,k,v} (+ b)
    h   = h + W_down · (SiLU(x W_gate) ⊙ x W_up),          x = RMSNorm(h)
    logits = RMSNorm(h) · W_head   (W_head = E^T when tied; float32)

``n_q, n_k`` are per-head RMSNorms (Qwen3) or the identity. Attention is grouped-query: query
head ``h`` reads key/value head ``h // (H / H_kv)``. RMSNorm (arXiv:1910.07467, Eq. 4) runs in
float32; RoPE (arXiv:2104.09864) uses the rotate-half layout with frequencies
``θ^(-2i/Dh)``, optionally rescaled by ``Llama3RopeScaling``.

Padding convention (left-padded prompts): a token whose position is negative is padding. No
query attends to it as a key, and RoPE rotates by ``max(position, 0)``. The cache keeps the
position of every slot (``pos``, -1 when empty or padding), so a query in slot ``i`` sees
slot ``j`` iff ``j <= i`` and ``pos[b, j] >= 0``.

Parameter paths (``nnx.State``), with the logical axis names stored as ``out_sharding``:

    embed_tokens.embedding                [V, d]          ("vocab", "embed")
    layers.{i}.input_layernorm.scale      [d]             ("embed",)
    layers.{i}.attn.q_proj.kernel         [d, H·Dh]       ("embed", "heads")  (+ .bias)
    layers.{i}.attn.k_proj.kernel         [d, H_kv·Dh]    ("embed", "kv_heads") (+ .bias)
    layers.{i}.attn.v_proj.kernel         [d, H_kv·Dh]    ("embed", "kv_heads") (+ .bias)
    layers.{i}.attn.o_proj.kernel         [H·Dh, d]       ("heads", "embed")  (+ .bias)
    layers.{i}.attn.q_norm.scale          [Dh]            ("head_dim",)       (Qwen3)
    layers.{i}.attn.k_norm.scale          [Dh]            ("head_dim",)       (Qwen3)
    layers.{i}.post_attention_layernorm.scale [d]         ("embed",)
    layers.{i}.mlp.gate_proj.kernel       [d, F]          ("embed", "mlp")
    layers.{i}.mlp.up_proj.kernel         [d, F]          ("embed", "mlp")
    layers.{i}.mlp.down_proj.kernel       [F, d]          ("mlp", "embed")
    norm.scale                            [d]             ("embed",)
    lm_head.kernel                        [d, V]          ("embed", "vocab")  (untied only)

These names match ``cliffjax.distributed.partition.TRANSFORMER_RULES`` (column-parallel
q/k/v/gate/up, row-parallel o/down, vocabulary-parallel embedding and head).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cliffjax.models.llama.config import LlamaConfig
from cliffjax.models.transformer import _check_logits_from

Array = jax.Array


class LlamaCache(NamedTuple):
    """Fixed-size KV cache with per-slot positions.

    Attributes:
      k: one ``[B, H_kv, T, Dh]`` array per layer (keys after RoPE).
      v: same shapes as ``k``.
      pos: ``[B, T]`` int32 position of the token in each slot; -1 for empty or padding slots.
      index: int32 scalar; the next call writes its ``S`` tokens at slots ``[index, index+S)``.
    """

    k: tuple[Array, ...]
    v: tuple[Array, ...]
    pos: Array
    index: Array


def init_llama_cache(cfg: LlamaConfig, batch: int, max_len: int, dtype=None) -> LlamaCache:
    """An empty cache: zero keys/values, ``pos = -1`` everywhere, ``index = 0``."""
    dtype = jnp.dtype(cfg.dtype if dtype is None else dtype)
    shape = (batch, cfg.num_key_value_heads, max_len, cfg.head_dim)
    layers = range(cfg.num_hidden_layers)
    return LlamaCache(
        k=tuple(jnp.zeros(shape, dtype) for _ in layers),
        v=tuple(jnp.zeros(shape, dtype) for _ in layers),
        pos=jnp.full((batch, max_len), -1, jnp.int32),
        index=jnp.zeros((), jnp.int32),
    )


def grow_llama_cache(cache: LlamaCache, max_len: int) -> LlamaCache:
    """The same cache with ``max_len >= T`` slots: new slots empty (zeros, ``pos = -1``)."""
    t = cache.pos.shape[1]
    if max_len < t:
        raise ValueError(
            f"grow_llama_cache: max_len must be >= the cache length {t}, got {max_len}"
        )
    pad = lambda x: jnp.pad(x, ((0, 0), (0, 0), (0, max_len - t), (0, 0)))
    return LlamaCache(
        k=tuple(pad(x) for x in cache.k),
        v=tuple(pad(x) for x in cache.v),
        pos=jnp.pad(cache.pos, ((0, 0), (0, max_len - t)), constant_values=-1),
        index=cache.index,
    )


def rope_inv_freq(cfg: LlamaConfig) -> np.ndarray:
    """``[Dh/2]`` float32 RoPE frequencies ``θ^(-2i/Dh)``, Llama-3 scaled when configured."""
    dh = cfg.head_dim
    inv = 1.0 / (cfg.rope_theta ** (np.arange(0, dh, 2, dtype=np.float64) / dh))
    rs = cfg.rope_scaling
    if rs is not None:
        old = rs.original_max_position_embeddings
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > old / rs.low_freq_factor, inv / rs.factor, inv)
        smooth = (old / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor)
        smoothed = (1 - smooth) * scaled / rs.factor + smooth * scaled
        medium = (wavelen >= old / rs.high_freq_factor) & (wavelen <= old / rs.low_freq_factor)
        inv = np.where(medium, smoothed, scaled)
    return inv.astype(np.float32)


def rotate_half_rope(x: Array, positions: Array, inv_freq) -> Array:
    """``x [B, S, H, Dh]`` rotated by angles ``max(pos, 0) · inv_freq [Dh/2]`` (rotate-half).

    ``out = x · cos + swap(x) · (sign · sin)`` with ``swap(x) = [x2, x1]`` (the two halves
    exchanged), ``sign = [-1, +1]`` per half and the angles repeated over both halves: the
    same products and sums as ``[x1 cos - x2 sin, x2 cos + x1 sin]``, but built from a
    reversal of a ``[2, Dh/2]`` axis instead of two slices and a concatenate, so XLA fuses it
    into one elementwise pass forwards and one backwards (the slices' gradient was a pad
    fusion of its own). Measured on the update step of a 20M Qwen2 model: 1.04x against
    the slice form (one in-process A/B; on the d=128 built-in transformer, Dh=32, the same
    form was slower, so that model keeps the slices; docs/benchmarks.md). Angles in float32;
    result in ``x.dtype``.
    """
    dh = x.shape[-1]
    half = dh // 2
    pos = jnp.maximum(positions, 0).astype(jnp.float32)
    freq = jnp.concatenate([inv_freq, inv_freq]).astype(jnp.float32)  # [Dh], constant
    angles = pos[:, :, None] * freq[None, None, :]  # [B, S, Dh]
    sign = jnp.concatenate([-jnp.ones((half,), jnp.float32), jnp.ones((half,), jnp.float32)])
    cos = jnp.cos(angles)[:, :, None, :]
    sin = (jnp.sin(angles) * sign[None, None, :])[:, :, None, :]
    x32 = x.astype(jnp.float32)
    swapped = jnp.flip(x32.reshape(*x.shape[:-1], 2, half), axis=-2).reshape(x.shape)
    return (x32 * cos + swapped * sin).astype(x.dtype)


def apply_rope(x: Array, positions: Array, inv_freq: np.ndarray) -> Array:
    """Rotate ``x [B, S, H, Dh]`` by angles ``max(pos, 0) · inv_freq`` (rotate-half layout)."""
    # One fused elementwise pass (no slices + concatenate; see rotate_half_rope).
    return rotate_half_rope(x, positions, jnp.asarray(inv_freq))


def _rows(x: Array) -> Array:
    """``[B, S, d] -> [B·S, d]``: every projection is one row matmul (performance only).

    XLA:CPU runs the weight gradient of a ``[B, S, d] × [d, F]`` product as a dot contracting
    over both B and S, with layout copies around it; on merged rows it is one canonical
    ``[d, B·S] × [B·S, F]`` dot (docs/benchmarks.md, "Speed work"). Same products, same
    parameters; a batch sharding of the leading axis carries over to the merged axis.
    """
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def _param(shape: tuple[int, ...], dtype, axes: tuple, value: float = 0.0) -> nnx.Param:
    return nnx.Param(jnp.full(shape, value, dtype), out_sharding=axes)


class RMSNorm(nnx.Module):
    """``y = x / sqrt(mean(x²) + eps) · scale``, in float32, cast back to ``x.dtype``."""

    def __init__(self, dim: int, eps: float, param_dtype, axis: str) -> None:
        self.eps = eps
        self.scale = _param((dim,), param_dtype, (axis,), 1.0)

    def __call__(self, x: Array) -> Array:
        x32 = x.astype(jnp.float32)
        inv = jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        scale = self.scale[...].astype(jnp.float32).reshape((1,) * (x.ndim - 1) + (-1,))
        return (x32 * inv * scale).astype(x.dtype)


class Linear(nnx.Module):
    """``y = x · kernel (+ bias)``; ``kernel [d_in, d_out]`` (the transpose of torch's weight).

    With ``lora_rank = r > 0`` it also holds LoRA factors ``lora_a [d_in, r]`` and
    ``lora_b [r, d_out]`` (float32) and computes ``y = x·kernel + s·(x·lora_a)·lora_b (+ bias)``
    with ``s = lora_scale`` (``cliffjax.models.lora``).
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        bias: bool,
        param_dtype,
        axes: tuple,
        dtype,
        lora_rank: int = 0,
        lora_scale: float = 0.0,
    ) -> None:
        self.dtype = dtype
        self.kernel = _param((d_in, d_out), param_dtype, axes)
        self.bias = _param((d_out,), param_dtype, (axes[1],)) if bias else None
        self.lora_scale = float(lora_scale)
        if lora_rank:
            self.lora_a = _param((d_in, lora_rank), jnp.float32, (axes[0], None))
            self.lora_b = _param((lora_rank, d_out), jnp.float32, (None, axes[1]))
        else:
            self.lora_a = self.lora_b = None

    def __call__(self, x: Array) -> Array:
        x = x.astype(self.dtype)
        y = jnp.einsum("...i,io->...o", x, self.kernel[...].astype(self.dtype))
        if self.lora_a is not None:
            xa = jnp.einsum("...i,ir->...r", x, self.lora_a[...].astype(self.dtype))
            lo = jnp.einsum("...r,ro->...o", xa, self.lora_b[...].astype(self.dtype))
            y = y + (self.lora_scale * lo).astype(y.dtype)
        if self.bias is not None:
            y = y + self.bias[...].astype(self.dtype).reshape((1,) * (y.ndim - 1) + (-1,))
        return y


def _lora_args(cfg: LlamaConfig, name: str) -> dict[str, float | int]:
    """``Linear`` keyword arguments of projection ``name``: its adapter rank and scale."""
    lora = cfg.lora
    if not lora.enabled or name not in lora.targets:
        return {}
    return {"lora_rank": lora.rank, "lora_scale": lora.scale}


class Attention(nnx.Module):
    """Grouped-query causal self-attention with optional q/k norms and a padding-aware cache."""

    def __init__(self, cfg: LlamaConfig) -> None:
        d, h, hkv, dh = (
            cfg.hidden_size,
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
        )
        pdt, dt = jnp.dtype(cfg.param_dtype), jnp.dtype(cfg.dtype)
        self.n_heads, self.n_kv, self.head_dim, self.dtype = h, hkv, dh, dt
        self.inv_freq = tuple(float(f) for f in rope_inv_freq(cfg))
        self.q_proj = Linear(
            d, h * dh, cfg.qkv_bias, pdt, ("embed", "heads"), dt, **_lora_args(cfg, "q_proj")
        )
        self.k_proj = Linear(
            d, hkv * dh, cfg.qkv_bias, pdt, ("embed", "kv_heads"), dt, **_lora_args(cfg, "k_proj")
        )
        self.v_proj = Linear(
            d, hkv * dh, cfg.qkv_bias, pdt, ("embed", "kv_heads"), dt, **_lora_args(cfg, "v_proj")
        )
        self.o_proj = Linear(
            h * dh, d, cfg.o_bias, pdt, ("heads", "embed"), dt, **_lora_args(cfg, "o_proj")
        )
        if cfg.qk_norm:
            self.q_norm = RMSNorm(dh, cfg.rms_norm_eps, pdt, "head_dim")
            self.k_norm = RMSNorm(dh, cfg.rms_norm_eps, pdt, "head_dim")
        else:
            self.q_norm = self.k_norm = None

    def __call__(
        self,
        x: Array,
        positions: Array,
        layer_kv: tuple[Array, Array] | None,
        key_pos: Array,
        start: Array,
    ) -> tuple[Array, tuple[Array, Array] | None]:
        """``x [B, S, d]`` -> ``[B, S, d]``; ``key_pos [B, T]`` are the positions of the keys
        (the cache's ``pos`` after writing this chunk, or ``positions`` with no cache)."""
        b, s, _ = x.shape
        rows = _rows(x)
        q = self.q_proj(rows).reshape(b, s, self.n_heads, self.head_dim)
        k = self.k_proj(rows).reshape(b, s, self.n_kv, self.head_dim)
        v = self.v_proj(rows).reshape(b, s, self.n_kv, self.head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        inv_freq = np.asarray(self.inv_freq, np.float32)
        q = apply_rope(q, positions, inv_freq)
        k = apply_rope(k, positions, inv_freq)
        groups = self.n_heads // self.n_kv
        qg = q.reshape(b, s, self.n_kv, groups, self.head_dim)
        neg = jnp.finfo(jnp.float32).min
        if layer_kv is None:
            causal = jnp.arange(s, dtype=jnp.int32)[None, :] <= jnp.arange(s)[:, None]  # [S, S]
            allowed = causal[None] & (key_pos >= 0)[:, None, :]  # [B, S, S]
            scores = jnp.einsum(
                "bsngk,btnk->bngst", qg, k, preferred_element_type=jnp.float32
            ) / math.sqrt(self.head_dim)
            scores = jnp.where(allowed[:, None, None], scores, neg)
            probs = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
            ctx = jnp.einsum("bngst,btnk->bsngk", probs, v)
            return self._out(ctx), None
        # The cache is laid out [B, H_kv, T, Dh]: each (row, kv head) is one contiguous
        # [T, Dh] matrix and a decode step is one small matmul per (row, kv head) against the
        # G query heads that share it, with no transposes of the cache.
        kc, vc = layer_kv
        kt = jnp.swapaxes(k, 1, 2).astype(kc.dtype)  # [B, H_kv, S, Dh]
        vt = jnp.swapaxes(v, 1, 2).astype(vc.dtype)
        keys = jax.lax.dynamic_update_slice(kc, kt, (0, 0, start, 0))
        values = jax.lax.dynamic_update_slice(vc, vt, (0, 0, start, 0))
        new_kv = (keys, values)
        t = keys.shape[2]
        q_slot = start + jnp.arange(s, dtype=jnp.int32)
        causal = jnp.arange(t, dtype=jnp.int32)[None, :] <= q_slot[:, None]  # [S, T]
        allowed = causal[None] & (key_pos >= 0)[:, None, :]  # [B, S, T]
        qt = jnp.transpose(qg, (0, 2, 3, 1, 4))  # [B, H_kv, G, S, Dh]
        scores = jnp.einsum(
            "bngsk,bntk->bngst", qt, keys.astype(self.dtype), preferred_element_type=jnp.float32
        ) / math.sqrt(self.head_dim)
        scores = jnp.where(allowed[:, None, None], scores, neg)
        probs = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
        ctx = jnp.einsum("bngst,bntk->bngsk", probs, values.astype(self.dtype))
        ctx = jnp.transpose(ctx, (0, 3, 1, 2, 4))  # [B, S, H_kv, G, Dh]
        return self._out(ctx), new_kv

    def _out(self, ctx: Array) -> Array:
        """``o_proj`` of ``ctx [B, S, H_kv, G, Dh]`` (or ``[B, S, H, Dh]``) -> ``[B, S, d]``."""
        b, s = ctx.shape[:2]
        y = self.o_proj(ctx.reshape(b * s, self.n_heads * self.head_dim))
        return y.reshape(b, s, -1)


class MLP(nnx.Module):
    """SwiGLU (arXiv:2002.05202, Eq. 6): ``down(SiLU(gate(x)) ⊙ up(x))``, no biases."""

    def __init__(self, cfg: LlamaConfig) -> None:
        d, f = cfg.hidden_size, cfg.intermediate_size
        pdt, dt = jnp.dtype(cfg.param_dtype), jnp.dtype(cfg.dtype)
        self.gate_proj = Linear(
            d, f, False, pdt, ("embed", "mlp"), dt, **_lora_args(cfg, "gate_proj")
        )
        self.up_proj = Linear(d, f, False, pdt, ("embed", "mlp"), dt, **_lora_args(cfg, "up_proj"))
        self.down_proj = Linear(
            f, d, False, pdt, ("mlp", "embed"), dt, **_lora_args(cfg, "down_proj")
        )

    def __call__(self, x: Array) -> Array:
        rows = _rows(x)
        y = self.down_proj(jax.nn.silu(self.gate_proj(rows)) * self.up_proj(rows))
        return y.reshape(*x.shape[:-1], -1)


class DecoderLayer(nnx.Module):
    """Pre-norm block: ``h += Attn(RMSNorm(h)); h += MLP(RMSNorm(h))``."""

    def __init__(self, cfg: LlamaConfig) -> None:
        pdt = jnp.dtype(cfg.param_dtype)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, pdt, "embed")
        self.attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, pdt, "embed")
        self.mlp = MLP(cfg)

    def __call__(self, h, positions, layer_kv, key_pos, start):
        a, new_kv = self.attn(self.input_layernorm(h), positions, layer_kv, key_pos, start)
        h = h + a
        return h + self.mlp(self.post_attention_layernorm(h)), new_kv


class Embed(nnx.Module):
    """Token embedding table ``embedding [V, d]``."""

    def __init__(self, cfg: LlamaConfig) -> None:
        self.embedding = _param(
            (cfg.vocab_size, cfg.hidden_size), jnp.dtype(cfg.param_dtype), ("vocab", "embed")
        )


class LmHead(nnx.Module):
    """Untied output projection ``kernel [d, V]``."""

    def __init__(self, cfg: LlamaConfig) -> None:
        self.kernel = _param(
            (cfg.hidden_size, cfg.vocab_size), jnp.dtype(cfg.param_dtype), ("embed", "vocab")
        )


class LlamaModel(nnx.Module):
    """Decoder-only LM; ``model(tokens, positions, cache) -> (logits f32, cache)``.

    Built with zero parameters (norm scales one); the values come from a checkpoint
    (``cliffjax.models.llama.params.load_hf``) or ``init_random``.
    """

    def __init__(self, cfg: LlamaConfig) -> None:
        self.config = cfg
        self.embed_tokens = Embed(cfg)
        self.layers = nnx.List([DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, jnp.dtype(cfg.param_dtype), "embed")
        self.lm_head = None if cfg.tie_word_embeddings else LmHead(cfg)

    def init_cache(self, batch: int, max_len: int, dtype=None) -> LlamaCache:
        """An empty ``LlamaCache`` (see ``init_llama_cache``)."""
        return init_llama_cache(self.config, batch, max_len, dtype)

    def grow_cache(self, cache: LlamaCache, max_len: int) -> LlamaCache:
        """``cache`` with ``max_len`` slots (see ``grow_llama_cache``; used by the sampler)."""
        return grow_llama_cache(cache, max_len)

    def __call__(
        self,
        tokens: Array,
        positions: Array,
        cache: LlamaCache | None = None,
        logits_from: int = 0,
    ) -> tuple[Array, LlamaCache | None]:
        """Next-token logits (at positions ``logits_from`` on).

        Args:
          tokens: ``[B, S]`` int32.
          positions: ``[B, S]`` int32; negative marks padding (never attended to).
          cache: None (plain causal pass) or a ``LlamaCache``: the chunk is written to slots
            ``[index, index + S)`` (keys, values and positions) and attends to the cache.
          logits_from: static; logits for positions ``logits_from .. S-1`` only
            (``[B, S - logits_from, V]``, the values of ``logits[:, logits_from:]``) without
            the output head's work, and its gradient, on the earlier positions.
        Returns:
          ``(logits [B, S, V] float32, updated cache or None)``.
        """
        if tokens.ndim != 2 or positions.shape != tokens.shape:
            raise ValueError(
                f"tokens and positions must both be [B, S]; got {tokens.shape} and {positions.shape}"
            )
        _check_logits_from(logits_from, tokens.shape[1])
        cfg = self.config
        dtype = jnp.dtype(cfg.dtype)
        positions = positions.astype(jnp.int32)
        table = self.embed_tokens.embedding[...]
        h = jnp.take(table, tokens, axis=0).astype(dtype)
        if cache is None:
            start = jnp.zeros((), jnp.int32)
            key_pos = positions
        else:
            start = cache.index
            key_pos = jax.lax.dynamic_update_slice(cache.pos, positions, (0, start))
        new_k, new_v = [], []
        for i, layer in enumerate(self.layers):
            layer_kv = None if cache is None else (cache.k[i], cache.v[i])
            h, kv = layer(h, positions, layer_kv, key_pos, start)
            if kv is not None:
                new_k.append(kv[0])
                new_v.append(kv[1])
        h = self.norm(h[:, logits_from:] if logits_from else h)
        head = table.T if self.lm_head is None else self.lm_head.kernel[...]
        logits = jnp.einsum(
            "md,dv->mv", _rows(h), head.astype(dtype), preferred_element_type=jnp.float32
        ).reshape(*h.shape[:2], -1)
        if cache is None:
            return logits, None
        return logits, LlamaCache(tuple(new_k), tuple(new_v), key_pos, start + tokens.shape[1])
