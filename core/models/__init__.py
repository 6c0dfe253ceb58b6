"""Models: the NNX transformer and the functional policy interface."""

from cliffjax.models.policy import Policy, apply, init_cache, make_policy, param_count
from cliffjax.models.transformer import (
    PRESETS,
    KVCache,
    Transformer,
    TransformerConfig,
    init_kv_cache,
    preset_config,
)

__all__ = [
    "PRESETS",
    "KVCache",
    "Policy",
    "Transformer",
    "TransformerConfig",
    "apply",
    "init_cache",
    "init_kv_cache",
    "make_policy",
    "param_count",
    "preset_config",
]
