"""``from_hf_config``: field mapping, RoPE scaling, and errors naming unsupported fields."""

from __future__ import annotations

import numpy as np
import pytest

from cliffjax.models.llama.config import Llama3RopeScaling, LlamaConfig, from_hf_config
from cliffjax.models.llama.modeling import rope_inv_freq

BASE = dict(
    vocab_size=300,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
)


def test_qwen2_has_qkv_biases_but_no_output_bias():
    cfg = from_hf_config({"model_type": "qwen2", **BASE})
    assert cfg.qkv_bias and not cfg.o_bias and not cfg.qk_norm
    assert cfg.head_dim == 16


def test_qwen3_uses_explicit_head_dim_and_qk_norm():
    cfg = from_hf_config({"model_type": "qwen3", "head_dim": 32, **BASE})
    assert cfg.head_dim == 32 and cfg.qk_norm and not cfg.qkv_bias


def test_old_style_rope_fields_are_read():
    hf = {
        "model_type": "llama",
        "rope_theta": 500000.0,
        "rope_scaling": {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        **BASE,
    }
    cfg = from_hf_config(hf)
    assert cfg.rope_theta == 500000.0
    assert cfg.rope_scaling == Llama3RopeScaling(8.0, 1.0, 4.0, 8192)


def test_llama3_scaling_divides_low_frequencies_and_keeps_high_ones():
    plain = from_hf_config({"model_type": "llama", **BASE})
    scaled = plain.replace(rope_scaling=Llama3RopeScaling(8.0, 1.0, 4.0, 16))
    a, b = rope_inv_freq(plain), rope_inv_freq(scaled)
    wavelen = 2 * np.pi / a
    np.testing.assert_allclose(b[wavelen < 4], a[wavelen < 4])
    np.testing.assert_allclose(b[wavelen > 16], a[wavelen > 16] / 8, rtol=1e-6)


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"model_type": "mistral"}, "model_type='mistral'"),
        ({"model_type": "qwen2", "use_sliding_window": True}, "use_sliding_window"),
        ({"model_type": "llama", "rope_scaling": {"rope_type": "linear", "factor": 2}}, "linear"),
        ({"model_type": "llama", "mlp_bias": True}, "mlp_bias"),
        ({"model_type": "llama", "num_key_value_heads": 3}, "num_key_value_heads"),
        ({"model_type": "qwen2", "layer_types": ["sliding_attention"]}, "sliding_attention"),
    ],
)
def test_unsupported_fields_are_named(extra, message):
    with pytest.raises(ValueError, match=message):
        from_hf_config({**BASE, **extra})


def test_round_trip_through_hf_dict():
    cfg = LlamaConfig(
        "llama", 300, 64, 128, 2, 4, 2, 16, rope_scaling=Llama3RopeScaling(8.0, 1.0, 4.0, 64)
    )
    assert from_hf_config(cfg.to_hf_config()) == cfg


def test_num_params_counts_tied_head_once():
    cfg = from_hf_config({"model_type": "qwen2", "tie_word_embeddings": True, **BASE})
    untied = cfg.replace(tie_word_embeddings=False)
    assert untied.num_params() - cfg.num_params() == 300 * 64
