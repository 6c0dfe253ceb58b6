"""``build_policy`` dispatches on the model config type."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from cliffjax.models.build import HFModelConfig, build_policy
from cliffjax.models.llama import LlamaModel
from cliffjax.models.transformer import Transformer, TransformerConfig


def test_transformer_config_builds_random_transformer():
    pol = build_policy(TransformerConfig(vocab_size=11, d_model=16, n_heads=2, d_ff=32), 0)
    assert isinstance(nnx.merge(pol.graphdef, pol.params), Transformer)


def test_hf_config_loads_checkpoint(hf_checkpoints):
    pol = build_policy(HFModelConfig(path=hf_checkpoints["qwen3_qknorm_tied"][0]))
    assert isinstance(nnx.merge(pol.graphdef, pol.params), LlamaModel)
    emb = np.asarray(pol.params["embed_tokens"]["embedding"][...])
    torch_emb = hf_checkpoints["qwen3_qknorm_tied"][1].model.embed_tokens.weight
    np.testing.assert_array_equal(emb, torch_emb.detach().numpy())
    assert jax.tree.leaves(pol.params)[0].dtype == np.float32


def test_bad_hf_config_fields_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"HFModelConfig\.dtype"):
        HFModelConfig(path="x", dtype="int8")
    with pytest.raises(FileNotFoundError, match=r"model\.path"):
        build_policy(HFModelConfig(path=str(tmp_path / "absent")))
