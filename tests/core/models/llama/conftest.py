"""Tiny random Hugging Face checkpoints (hidden 64, 2 layers, vocab 300), built once per session."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VOCAB = 300
COMMON = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    vocab_size=VOCAB,
    initializer_range=0.1,  # peaky logits: no near-ties in greedy decoding
    max_position_embeddings=256,
)

# name -> (config class, model class, extra config fields, sharded into several files)
VARIANTS = {
    "llama3_gqa_untied": (
        "LlamaConfig",
        "LlamaForCausalLM",
        dict(
            num_key_value_heads=2,
            tie_word_embeddings=False,
            rope_theta=500000.0,
            rope_scaling={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 16,
            },
        ),
        False,
    ),
    "llama_tied_sharded": (
        "LlamaConfig",
        "LlamaForCausalLM",
        dict(num_key_value_heads=4, tie_word_embeddings=True, rms_norm_eps=1e-5),
        True,
    ),
    "qwen2_bias_sharded": (
        "Qwen2Config",
        "Qwen2ForCausalLM",
        dict(num_key_value_heads=1, tie_word_embeddings=False, rope_theta=1000000.0),
        True,
    ),
    "qwen3_qknorm_tied": (
        "Qwen3Config",
        "Qwen3ForCausalLM",
        dict(num_key_value_heads=2, head_dim=32, tie_word_embeddings=True),
        False,
    ),
}


def _build(name: str, root: str):
    cfg_cls, model_cls, extra, sharded = VARIANTS[name]
    torch.manual_seed(sum(map(ord, name)))
    cfg = getattr(transformers, cfg_cls)(**COMMON, **extra)
    model = getattr(transformers, model_cls)(cfg).eval()
    if name.startswith("qwen2"):
        # Biases are zero-initialised; make them matter.
        with torch.no_grad():
            for layer in model.model.layers:
                for proj in (
                    layer.self_attn.q_proj,
                    layer.self_attn.k_proj,
                    layer.self_attn.v_proj,
                ):
                    proj.bias.normal_(0.0, 0.3)
    if name.startswith("qwen3"):
        with torch.no_grad():
            for layer in model.model.layers:
                layer.self_attn.q_norm.weight.uniform_(0.5, 1.5)
                layer.self_attn.k_norm.weight.uniform_(0.5, 1.5)
    path = os.path.join(root, name)
    model.save_pretrained(path, max_shard_size="250KB" if sharded else "1GB")
    return path, model


@pytest.fixture(scope="session")
def hf_checkpoints(tmp_path_factory) -> dict[str, tuple[str, object]]:
    """name -> (checkpoint directory, the transformers model it holds)."""
    root = str(tmp_path_factory.mktemp("hf_ckpt"))
    return {name: _build(name, root) for name in VARIANTS}
