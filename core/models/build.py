"""``build_policy``: one entry point that turns a model config into a ``Policy``.

    build_policy(TransformerConfig(...), key)          # random init of the built-in transformer
    build_policy(HFModelConfig(path="ckpt/dir"), key)  # a Llama / Qwen2 / Qwen3 checkpoint

The Hydra group ``model=hf`` (``conf/model/hf.yaml``) maps onto ``HFModelConfig``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax

from cliffjax.models.lora import LoRAConfig
from cliffjax.models.policy import Policy, make_policy
from cliffjax.models.transformer import TransformerConfig

_DTYPES = ("float32", "bfloat16", "float16")


@dataclasses.dataclass(frozen=True)
class HFModelConfig:
    """A pretrained Hugging Face checkpoint to load (``cliffjax.models.llama.load_hf``).

    Attributes:
      path: checkpoint directory with ``config.json`` and ``*.safetensors``.
      dtype: compute dtype ("float32", "bfloat16", "float16"); logits are float32.
      param_dtype: parameter storage dtype; None means ``dtype``.
      lora: LoRA adapters (``cliffjax.models.lora.LoRAConfig``; ``rank`` 0 = none, the whole
        model trains). With adapters only the adapters train and the KL reference is the
        checkpoint itself (adapters off).
    """

    path: str
    dtype: str = "float32"
    param_dtype: str | None = None
    lora: LoRAConfig = dataclasses.field(default_factory=LoRAConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise ValueError(
                f"HFModelConfig.path must be a checkpoint directory, got {self.path!r}"
            )
        if self.dtype not in _DTYPES:
            raise ValueError(f"HFModelConfig.dtype must be one of {_DTYPES}, got {self.dtype!r}")
        if self.param_dtype is not None and self.param_dtype not in _DTYPES:
            raise ValueError(
                f"HFModelConfig.param_dtype must be None or one of {_DTYPES}, got "
                f"{self.param_dtype!r}"
            )


def build_policy(model_cfg: Any, key: jax.Array | int = 0, layout: Any = None) -> Policy:
    """A ``Policy`` for ``model_cfg``.

    Args:
      model_cfg: ``TransformerConfig`` (random init from ``key``) or ``HFModelConfig``
        (weights from the checkpoint; ``key`` unused).
      key: PRNG key or int seed for random init.
      layout: optional ``cliffjax.distributed.Layout``; a checkpoint is loaded straight into
        its shardings. (A random transformer is returned unplaced; ``layout.place`` it.)
    """
    if isinstance(model_cfg, TransformerConfig):
        return make_policy(model_cfg, key)
    if isinstance(model_cfg, HFModelConfig):
        from cliffjax.models.llama.params import load_hf

        if not os.path.isdir(model_cfg.path):
            raise FileNotFoundError(
                f"model.path={model_cfg.path!r} is not a directory (download a checkpoint "
                "first; see docs/real_models.md)"
            )
        return load_hf(
            model_cfg.path,
            dtype=model_cfg.dtype,
            param_dtype=model_cfg.param_dtype,
            layout=layout,
            lora=model_cfg.lora if model_cfg.lora.enabled else None,
        )
    raise TypeError(
        f"model config must be TransformerConfig or HFModelConfig, got {type(model_cfg).__name__}"
    )
