"""Llama / Qwen2 / Qwen3 decoders loaded from Hugging Face safetensors checkpoints."""

from cliffjax.models.llama.config import Llama3RopeScaling, LlamaConfig, from_hf_config
from cliffjax.models.llama.modeling import LlamaCache, LlamaModel, init_llama_cache
from cliffjax.models.llama.params import export_hf, load_hf

__all__ = [
    "Llama3RopeScaling",
    "LlamaCache",
    "LlamaConfig",
    "LlamaModel",
    "export_hf",
    "from_hf_config",
    "init_llama_cache",
    "load_hf",
]
