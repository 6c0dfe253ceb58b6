"""LoRA adapters on the Llama family: a fresh adapter is the base model, adapters off is the
base model, folding and merged export keep the adapted function, only adapters train."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cliffjax.models.llama import load_hf
from cliffjax.models.llama.params import export_hf
from cliffjax.models.lora import (
    LoRAConfig,
    adapters_off,
    count_trainable,
    fold_adapters,
    has_adapters,
    merged_params,
    trainable,
    with_trainable,
)
from cliffjax.models.policy import apply, param_count
from cliffjax.training.config import OptimConfig
from cliffjax.training.sft import make_sft_step
from cliffjax.training.state import init_state, make_optimizer

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VOCAB = 300
NAME = "qwen2_bias_sharded"  # biases, GQA with one KV head, untied head
forward = jax.jit(apply, static_argnums=0)
LORA = LoRAConfig(rank=4, alpha=8.0)


def _batch(seed: int = 0, b: int = 3, s: int = 10):
    tokens = jnp.asarray(np.random.RandomState(seed).randint(0, VOCAB, size=(b, s)), jnp.int32)
    return tokens, jnp.broadcast_to(jnp.arange(s, dtype=jnp.int32), tokens.shape)


def _random_adapters(params, seed: int = 1, scale: float = 0.2):
    """``params`` with every adapter factor (``B`` included) drawn at random."""
    train = trainable(params)
    leaves, treedef = jax.tree.flatten(train)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    new = [scale * jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)]
    return with_trainable(params, jax.tree.unflatten(treedef, new))


@pytest.fixture(scope="module")
def pols(hf_checkpoints):
    path = hf_checkpoints[NAME][0]
    return load_hf(path), load_hf(path, lora=LORA)


def test_lora_config_validation_names_the_field():
    for kwargs, field in (
        (dict(rank=-1), "rank"),
        (dict(rank=4, alpha=0.0), "alpha"),
        (dict(rank=4, targets=("q_proj", "qkv")), "targets"),
        (dict(rank=4, targets=()), "targets"),
    ):
        with pytest.raises(ValueError, match=field):
            LoRAConfig(**kwargs)
    assert LoRAConfig(rank=8, alpha=16).scale == 2.0
    assert LoRAConfig(rank=16, alpha=8, rslora=True).scale == 2.0
    assert not LoRAConfig().enabled


def test_adapters_sit_on_the_targeted_projections_only(pols):
    base, lora = pols
    assert not has_adapters(base.params) and has_adapters(lora.params)
    layer = lora.params["layers"][0]
    for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
        a, b = layer["attn"][name]["lora_a"][...], layer["attn"][name]["lora_b"][...]
        kernel = layer["attn"][name]["kernel"][...]
        assert a.shape == (kernel.shape[0], 4) and b.shape == (4, kernel.shape[1])
        assert a.dtype == b.dtype == jnp.float32
        assert float(jnp.max(jnp.abs(a))) <= 1 / np.sqrt(kernel.shape[0]) and bool(jnp.all(b == 0))
    assert param_count(lora.params) == param_count(base.params) + count_trainable(lora.params)
    # Only q/v: the original paper's targets.


def test_targets_choose_the_projections(hf_checkpoints):
    """Only q and v: the original paper's targets."""
    qv = load_hf(hf_checkpoints[NAME][0], lora=LoRAConfig(rank=2, targets=("q_proj", "v_proj")))
    layer = qv.params["layers"][1]
    assert "lora_a" in layer["attn"]["v_proj"] and "lora_a" in layer["attn"]["q_proj"]
    assert "lora_a" not in layer["attn"]["k_proj"] and "lora_a" not in layer["mlp"]["down_proj"]


def test_fresh_adapters_and_adapters_off_equal_the_base_model(pols):
    base, lora = pols
    tokens, pos = _batch()
    ref = np.asarray(forward(base.graphdef, base.params, tokens, pos)[0])
    fresh = np.asarray(forward(lora.graphdef, lora.params, tokens, pos)[0])
    np.testing.assert_array_equal(fresh, ref)  # B = 0: the adapter term is exactly zero
    adapted = _random_adapters(lora.params)
    moved = np.asarray(forward(lora.graphdef, adapted, tokens, pos)[0])
    assert np.abs(moved - ref).max() > 1e-2
    off = np.asarray(forward(lora.graphdef, adapters_off(adapted), tokens, pos)[0])
    np.testing.assert_array_equal(off, ref)


def test_adapted_logits_equal_the_explicit_formula(pols):
    """One layer's q projection by hand: ``x W + b + s (x A) B``."""
    _, lora = pols
    adapted = _random_adapters(lora.params)
    q = adapted["layers"][0]["attn"]["q_proj"]
    x = jax.random.normal(jax.random.key(3), (2, 5, 64))
    from flax import nnx

    model = nnx.merge(lora.graphdef, adapted)
    got = model.layers[0].attn.q_proj(x)
    want = (
        x @ q["kernel"][...]
        + q["bias"][...][None, None, :]
        + LORA.scale * (x @ q["lora_a"][...]) @ q["lora_b"][...]
    )
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)


def test_fold_and_merged_export_keep_the_adapted_function(pols, hf_checkpoints, tmp_path):
    base, lora = pols
    adapted = _random_adapters(lora.params)
    tokens, pos = _batch(seed=2)
    want = np.asarray(forward(lora.graphdef, adapted, tokens, pos)[0])
    folded = fold_adapters(adapted, LORA.scale)
    assert all(
        bool(jnp.all(x == 0))
        for p, x in jax.tree_util.tree_flatten_with_path(folded)[0]
        if "lora_b" in jax.tree_util.keystr(p)
    )
    np.testing.assert_allclose(
        np.asarray(forward(lora.graphdef, folded, tokens, pos)[0]), want, atol=1e-4
    )
    merged = merged_params(adapted, LORA.scale)
    assert not has_adapters(merged)
    np.testing.assert_allclose(
        np.asarray(forward(base.graphdef, merged, tokens, pos)[0]), want, atol=1e-4
    )
    out = tmp_path / "merged"
    hf = export_hf(lora.graphdef, adapted, str(out))
    assert "lora" not in str(hf)
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(str(out)).eval()
    with torch.no_grad():
        theirs = reloaded(torch.tensor(np.asarray(tokens), dtype=torch.long)).logits.numpy()
    np.testing.assert_allclose(theirs, want, atol=1e-4, rtol=0)


def test_training_moves_only_the_adapters(pols):
    _, lora = pols
    optim = OptimConfig(lr=1e-2, warmup_steps=0)
    tx = make_optimizer(optim, 3)
    state = init_state(lora.params, tx, jax.random.key(0))
    # Adam's moments exist for the adapters only.
    n_moments = sum(int(x.size) for x in jax.tree.leaves(state.opt_state) if x.ndim)
    assert n_moments == 2 * count_trainable(lora.params)
    before = jax.tree.map(np.asarray, lora.params)
    step = make_sft_step(lora.graphdef, optim, total_steps=3)
    tokens, _ = _batch(seed=4, b=4, s=12)
    losses = []
    for _ in range(3):
        state, metrics = step(state, tokens, jnp.ones_like(tokens))
        losses.append(float(metrics["loss"]))
    assert losses[-1] < losses[0]
    flat_before = dict(jax.tree_util.tree_flatten_with_path(before)[0])
    for p, x in jax.tree_util.tree_flatten_with_path(state.params)[0]:
        name = jax.tree_util.keystr(p)
        if "lora_" in name:
            continue
        np.testing.assert_array_equal(np.asarray(x), flat_before[p], err_msg=name)
    b_after = state.params["layers"][0]["mlp"]["down_proj"]["lora_b"][...]
    assert float(jnp.max(jnp.abs(b_after))) > 0
