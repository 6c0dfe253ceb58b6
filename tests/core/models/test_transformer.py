"""Transformer + policy interface: shapes, dtypes, causality, KV-cache equivalence, paths."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cliffjax.models import (
    KVCache,
    TransformerConfig,
    apply,
    init_cache,
    make_policy,
    param_count,
    preset_config,
)

V = 20


@pytest.fixture(scope="module")
def policy():
    cfg = preset_config("tiny", V, max_seq_len=16)
    return cfg, make_policy(cfg, jax.random.key(0))


@pytest.fixture(scope="module")
def fwd():
    return jax.jit(apply)


def _tokens(b, s, seed=1):
    tokens = jax.random.randint(jax.random.key(seed), (b, s), 0, V, dtype=jnp.int32)
    positions = jnp.broadcast_to(jnp.arange(s, dtype=jnp.int32), (b, s))
    return tokens, positions


@pytest.mark.parametrize(
    "field,value",
    [("d_model", 30), ("n_heads", 0), ("vocab_size", -1), ("dtype", "int8"), ("rope_theta", 0.0)],
)
def test_config_validation(field, value):
    kwargs = dict(vocab_size=V, d_model=32, n_heads=4)
    kwargs[field] = value
    with pytest.raises(ValueError, match=field if field != "d_model" else "divisible"):
        TransformerConfig(**kwargs)


def test_odd_head_dim_rejected():
    with pytest.raises(ValueError, match="even head dimension"):
        TransformerConfig(vocab_size=V, d_model=12, n_heads=4)


def test_param_counts(policy):
    cfg, (_, params) = policy
    assert param_count(params) == cfg.num_params()
    # The calibrated CPU default: the d=128 / 2-layer / 4-head / ff-512 model with ~18-20 tokens ≈ 0.53M.
    assert 0.52e6 < preset_config("small", V).num_params() < 0.54e6
    assert 95e6 < preset_config("base100m", V).num_params() < 105e6


def test_param_paths_and_sharding_metadata(policy):
    _, (_, params) = policy
    paths = {
        jax.tree_util.keystr(p, simple=True, separator=".")
        for p, _ in jax.tree.leaves_with_path(params)
    }
    for expected in [
        "embed.embedding.value",
        "layers.0.attn.qkv.value",
        "layers.1.mlp.gate_up.value",
        "layers.1.mlp.down.value",
        "final_norm.scale.value",
        "lm_head.value",
    ]:
        assert expected in paths
    assert params["layers"][0]["attn"]["qkv"].out_sharding == ("embed", None, "heads", "head_dim")


def test_forward_shapes_and_dtypes(policy, fwd):
    _cfg, (graphdef, params) = policy
    tokens, positions = _tokens(3, 7)
    logits, cache = fwd(graphdef, params, tokens, positions)
    assert logits.shape == (3, 7, V) and logits.dtype == jnp.float32
    assert cache is None
    assert np.all(np.isfinite(np.asarray(logits)))


def test_bfloat16_compute_returns_float32_logits():
    cfg = dataclasses.replace(preset_config("tiny", V), dtype="bfloat16")
    graphdef, params = make_policy(cfg, 0)
    tokens, positions = _tokens(2, 4)
    logits, _ = jax.jit(apply)(graphdef, params, tokens, positions)
    assert logits.dtype == jnp.float32


def test_causal(policy, fwd):
    _, (graphdef, params) = policy
    tokens, positions = _tokens(2, 8)
    changed = tokens.at[:, 5].set((tokens[:, 5] + 1) % V)
    a, _ = fwd(graphdef, params, tokens, positions)
    b, _ = fwd(graphdef, params, changed, positions)
    np.testing.assert_array_equal(np.asarray(a[:, :5]), np.asarray(b[:, :5]))
    assert not np.allclose(np.asarray(a[:, 5:]), np.asarray(b[:, 5:]))


def test_kv_cache_prefill_and_steps_match_full_forward(policy, fwd):
    cfg, (graphdef, params) = policy
    tokens, positions = _tokens(3, 9)
    full, _ = fwd(graphdef, params, tokens, positions)
    cache = init_cache(cfg, 3, 12)
    assert isinstance(cache, KVCache) and int(cache.index) == 0
    pieces = []
    logits, cache = fwd(graphdef, params, tokens[:, :5], positions[:, :5], cache)
    pieces.append(logits)
    for t in range(5, 9):
        logits, cache = fwd(graphdef, params, tokens[:, t : t + 1], positions[:, t : t + 1], cache)
        pieces.append(logits)
    assert int(cache.index) == 9
    np.testing.assert_allclose(
        np.concatenate(pieces, axis=1), np.asarray(full), atol=1e-5, rtol=1e-5
    )


def test_rope_makes_positions_matter(policy, fwd):
    _, (graphdef, params) = policy
    tokens, positions = _tokens(1, 4)
    a, _ = fwd(graphdef, params, tokens, positions)
    b, _ = fwd(graphdef, params, tokens, positions + 3)
    # Relative positions are unchanged, so RoPE attention gives the same logits...
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4)
    # ...while squeezing the positions together changes them.
    c, _ = fwd(graphdef, params, tokens, positions * 2)
    assert not np.allclose(np.asarray(a[:, 1:]), np.asarray(c[:, 1:]), atol=1e-4)


def test_shape_errors(policy):
    _, (graphdef, params) = policy
    tokens, positions = _tokens(2, 4)
    with pytest.raises(ValueError, match=r"\[B, S\]"):
        apply(graphdef, params, tokens, positions[:, :3])


def test_prefill_matches_full_forward_last_position(policy):
    cfg, (graphdef, params) = policy
    tokens, positions = _tokens(3, 6)

    @jax.jit
    def both(params):
        model = nnx.merge(graphdef, params)
        full, full_cache = model(tokens, positions, init_cache(cfg, 3, 8))
        last, last_cache = model.prefill(tokens, positions, init_cache(cfg, 3, 8))
        return full, full_cache, last, last_cache

    full, full_cache, last, last_cache = both(params)
    assert last.shape == (3, 1, V)
    np.testing.assert_allclose(np.asarray(last[:, 0]), np.asarray(full[:, -1]), atol=1e-5)
    for a, b in zip(jax.tree.leaves(full_cache), jax.tree.leaves(last_cache)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_base100m_builds_abstractly():
    """The accelerator preset traces (no memory) to the advertised parameter count."""
    from cliffjax.models.transformer import Transformer

    cfg = preset_config("base100m", V, max_seq_len=512)

    def build():
        with nnx.use_eager_sharding(False):
            return Transformer(cfg, jax.random.key(0))

    abstract = nnx.state(nnx.eval_shape(build))
    assert param_count(abstract) == cfg.num_params()
    assert abstract["layers"][11]["mlp"]["gate_up"].shape == (768, 2, 2560)


def test_logits_from_equals_the_sliced_full_output(policy):
    _, (graphdef, params) = policy
    tokens, positions = _tokens(2, 7)
    full, _ = apply(graphdef, params, tokens, positions)
    tail, _ = apply(graphdef, params, tokens, positions, logits_from=4)
    assert tail.shape == (2, 3, V)
    np.testing.assert_allclose(np.asarray(tail), np.asarray(full[:, 4:]), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="logits_from"):
        apply(graphdef, params, tokens, positions, logits_from=7)
