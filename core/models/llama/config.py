"""``LlamaConfig``: the decoder hyper-parameters read from a Hugging Face ``config.json``.

One frozen, hashable dataclass covers three checkpoint families:

* ``llama`` (Llama 2 / 3 / 3.x): optional ``rope_scaling`` of type ``llama3``; optional
  ``attention_bias`` (q/k/v/o biases).
* ``qwen2`` (Qwen2 / Qwen2.5): q/k/v biases, no o-projection bias.
* ``qwen3``: explicit ``head_dim``, per-head RMSNorm on queries and keys before RoPE.

All share grouped-query attention (``num_key_value_heads`` divides ``num_attention_heads``),
RoPE (rotate-half layout) with the config's theta, RMSNorm and a SwiGLU MLP, with tied or
untied input/output embeddings. Fields the model does not implement (other RoPE scaling
types, sliding-window attention, MLP biases, activations other than SiLU) are rejected by
``from_hf_config`` with a message naming the field, rather than silently ignored.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cliffjax.models.lora import LoRAConfig

SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "qwen3")
_DTYPES = ("float32", "bfloat16", "float16")


@dataclasses.dataclass(frozen=True)
class Llama3RopeScaling:
    """Llama 3.1 RoPE frequency scaling (``rope_type: llama3``).

    Wavelengths ``λ = 2π / f`` longer than ``original_max_position_embeddings / low_freq_factor``
    are divided by ``factor``; shorter than ``original / high_freq_factor`` are kept; in between
    the frequency is interpolated linearly in ``s = (original / λ - low) / (high - low)``:
    ``f' = (1 - s) f / factor + s f``.
    """

    factor: float
    low_freq_factor: float
    high_freq_factor: float
    original_max_position_embeddings: int

    def __post_init__(self) -> None:
        if not self.factor > 0:
            raise ValueError(f"rope_scaling.factor must be > 0, got {self.factor}")
        if not self.high_freq_factor > self.low_freq_factor > 0:
            raise ValueError(
                "rope_scaling needs high_freq_factor > low_freq_factor > 0, got "
                f"{self.high_freq_factor} and {self.low_freq_factor}"
            )
        if self.original_max_position_embeddings <= 0:
            raise ValueError("rope_scaling.original_max_position_embeddings must be > 0")


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    """Decoder hyper-parameters (names follow the Hugging Face config where one exists).

    Attributes:
      model_type: "llama", "qwen2" or "qwen3".
      vocab_size: V.
      hidden_size: residual width d.
      intermediate_size: SwiGLU hidden width F.
      num_hidden_layers: L.
      num_attention_heads: H (query heads).
      num_key_value_heads: H_kv (key/value heads; divides H).
      head_dim: Dh (may differ from d / H, as in Qwen3).
      rope_theta: RoPE base θ.
      rope_scaling: ``Llama3RopeScaling`` or None.
      rms_norm_eps: epsilon inside every RMSNorm.
      tie_word_embeddings: the output head is the transposed input embedding.
      qkv_bias: q/k/v projections have biases.
      o_bias: the attention output projection has a bias.
      qk_norm: per-head RMSNorm (weights ``[Dh]``) on q and k before RoPE (Qwen3).
      max_position_embeddings: the checkpoint's context length (documentation and export).
      bos_token_id, eos_token_id: kept for export (``eos_token_id`` may be a tuple).
      dtype: compute dtype; logits are always float32.
      param_dtype: storage dtype of the parameters.
      lora: LoRA adapters on the projections (``cliffjax.models.lora.LoRAConfig``; rank 0 =
        none). Not part of the Hugging Face config: export merges them into the kernels.
    """

    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rope_theta: float = 10000.0
    rope_scaling: Llama3RopeScaling | None = None
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: bool = False
    max_position_embeddings: int = 2048
    bos_token_id: int | None = None
    eos_token_id: int | tuple[int, ...] | None = None
    dtype: str = "float32"
    param_dtype: str = "float32"
    lora: LoRAConfig = dataclasses.field(default_factory=LoRAConfig)

    def __post_init__(self) -> None:
        if self.model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(
                f"LlamaConfig.model_type={self.model_type!r} is not supported; expected one of "
                f"{SUPPORTED_MODEL_TYPES}"
            )
        for name in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "head_dim",
            "max_position_embeddings",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"LlamaConfig.{name} must be a positive int, got {value!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"LlamaConfig.num_key_value_heads ({self.num_key_value_heads}) must divide "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        if self.head_dim % 2:
            raise ValueError(f"LlamaConfig.head_dim must be even (RoPE), got {self.head_dim}")
        if not self.rope_theta > 0:
            raise ValueError(f"LlamaConfig.rope_theta must be > 0, got {self.rope_theta}")
        if not self.rms_norm_eps > 0:
            raise ValueError(f"LlamaConfig.rms_norm_eps must be > 0, got {self.rms_norm_eps}")
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in _DTYPES:
                raise ValueError(
                    f"LlamaConfig.{name} must be one of {_DTYPES}, got {getattr(self, name)!r}"
                )

    def replace(self, **changes: Any) -> LlamaConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def num_params(self) -> int:
        """Exact parameter count (the output head counted once when tied)."""
        d, f, v = self.hidden_size, self.intermediate_size, self.vocab_size
        hq = self.num_attention_heads * self.head_dim
        hkv = self.num_key_value_heads * self.head_dim
        attn = d * hq + 2 * d * hkv + hq * d
        attn += (hq + 2 * hkv) * self.qkv_bias + d * self.o_bias + 2 * self.head_dim * self.qk_norm
        per_layer = 2 * d + attn + 3 * d * f
        head = 0 if self.tie_word_embeddings else d * v
        return v * d + self.num_hidden_layers * per_layer + d + head

    def to_hf_config(self) -> dict[str, Any]:
        """A ``config.json`` dict that ``transformers`` reads back as the same architecture."""
        arch = {
            "llama": "LlamaForCausalLM",
            "qwen2": "Qwen2ForCausalLM",
            "qwen3": "Qwen3ForCausalLM",
        }
        rope: dict[str, Any] = {"rope_type": "default", "rope_theta": self.rope_theta}
        if self.rope_scaling is not None:
            rope = {"rope_type": "llama3", "rope_theta": self.rope_theta}
            rope.update(dataclasses.asdict(self.rope_scaling))
        out: dict[str, Any] = {
            "architectures": [arch[self.model_type]],
            "model_type": self.model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_parameters": rope,
            "rope_scaling": None if self.rope_scaling is None else rope,
            "tie_word_embeddings": self.tie_word_embeddings,
            "max_position_embeddings": self.max_position_embeddings,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": (
                list(self.eos_token_id)
                if isinstance(self.eos_token_id, tuple)
                else self.eos_token_id
            ),
            "dtype": self.param_dtype,
        }
        if self.model_type == "llama":
            out["attention_bias"] = self.qkv_bias
            out["mlp_bias"] = False
        elif self.model_type == "qwen3":
            out["attention_bias"] = self.qkv_bias
        if self.model_type in ("qwen2", "qwen3"):
            out["use_sliding_window"] = False
            out["sliding_window"] = None
        return out


def _rope_fields(hf: dict[str, Any]) -> tuple[float, Llama3RopeScaling | None]:
    """RoPE theta and scaling from either ``rope_parameters`` (transformers >= 5) or the older
    top-level ``rope_theta`` + ``rope_scaling``."""
    params = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling") or None
    theta = float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))
    spec = scaling if scaling is not None else params
    rope_type = spec.get("rope_type", spec.get("type", "default")) if spec else "default"
    if rope_type in (None, "default"):
        return theta, None
    if rope_type != "llama3":
        raise ValueError(
            f"config.json rope_scaling rope_type={rope_type!r} is not supported "
            "(supported: default, llama3)"
        )
    try:
        scaled = Llama3RopeScaling(
            factor=float(spec["factor"]),
            low_freq_factor=float(spec["low_freq_factor"]),
            high_freq_factor=float(spec["high_freq_factor"]),
            original_max_position_embeddings=int(spec["original_max_position_embeddings"]),
        )
    except KeyError as err:
        raise ValueError(f"config.json rope_scaling (llama3) is missing {err.args[0]!r}") from None
    return theta, scaled


def from_hf_config(
    hf: dict[str, Any],
    dtype: str = "float32",
    param_dtype: str | None = None,
    lora: LoRAConfig | None = None,
) -> LlamaConfig:
    """Build a ``LlamaConfig`` from a parsed Hugging Face ``config.json``.

    Args:
      hf: the ``config.json`` dict.
      dtype: compute dtype ("float32", "bfloat16", "float16").
      param_dtype: parameter storage dtype (default: ``dtype``).
      lora: adapters to add (default none).
    Raises:
      ValueError naming the field when the checkpoint uses something this model lacks.
    """
    model_type = hf.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"config.json model_type={model_type!r} is not supported; expected one of "
            f"{SUPPORTED_MODEL_TYPES}"
        )
    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise ValueError(f"config.json hidden_act={act!r} is not supported (only 'silu')")
    if hf.get("mlp_bias", False):
        raise ValueError("config.json mlp_bias=True is not supported")
    if hf.get("use_sliding_window", False):
        raise ValueError("config.json use_sliding_window=True is not supported")
    layer_types = hf.get("layer_types") or []
    other = sorted({t for t in layer_types if t != "full_attention"})
    if other:
        raise ValueError(f"config.json layer_types {other} are not supported (only full_attention)")
    if hf.get("pretraining_tp", 1) not in (1, None):
        raise ValueError(f"config.json pretraining_tp={hf['pretraining_tp']} is not supported")
    theta, scaling = _rope_fields(hf)
    heads = int(hf["num_attention_heads"])
    hidden = int(hf["hidden_size"])
    head_dim = hf.get("head_dim") or hidden // heads
    bias = bool(hf.get("attention_bias", False))
    eos = hf.get("eos_token_id")
    return LlamaConfig(
        model_type=model_type,
        vocab_size=int(hf["vocab_size"]),
        hidden_size=hidden,
        intermediate_size=int(hf["intermediate_size"]),
        num_hidden_layers=int(hf["num_hidden_layers"]),
        num_attention_heads=heads,
        num_key_value_heads=int(hf.get("num_key_value_heads") or heads),
        head_dim=int(head_dim),
        rope_theta=theta,
        rope_scaling=scaling,
        rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
        qkv_bias=True if model_type == "qwen2" else bias,
        o_bias=False if model_type == "qwen2" else bias,
        qk_norm=model_type == "qwen3",
        max_position_embeddings=int(hf.get("max_position_embeddings", 2048)),
        bos_token_id=hf.get("bos_token_id"),
        eos_token_id=tuple(eos) if isinstance(eos, list) else eos,
        dtype=dtype,
        param_dtype=param_dtype or dtype,
        lora=lora or LoRAConfig(),
    )
