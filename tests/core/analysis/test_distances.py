"""Exact categorical distances and the Monte Carlo sequence estimates."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cliffjax.analysis import kl_categorical, sampled_distances, tv_distance
from cliffjax.models.policy import make_policy
from cliffjax.models.transformer import TransformerConfig
from cliffjax.sampling import SamplingConfig


def test_tv_and_kl_helpers():
    p = jnp.asarray([0.5, 0.5, 0.0])
    q = jnp.asarray([0.25, 0.25, 0.5])
    assert float(tv_distance(p, q)) == pytest.approx(0.5)
    assert float(kl_categorical(p, q)) == pytest.approx(np.log(2.0))
    assert float(kl_categorical(p, p)) == pytest.approx(0.0)
    # q underflowing to 0 where p > 0: large but finite
    assert np.isfinite(float(kl_categorical(p, jnp.asarray([1.0, 0.0, 0.0]))))


def test_sampled_distances_are_zero_for_equal_policies_and_grow_with_distance():
    cfg = TransformerConfig(vocab_size=6, max_seq_len=8, d_model=16, n_layers=1, n_heads=2, d_ff=32)
    policy = make_policy(cfg, 0)
    far = jax.tree.map(
        lambda x: x + 0.5 * jax.random.normal(jax.random.key(1), x.shape, x.dtype), policy.params
    )
    prompts = jnp.asarray([[2, 3], [4, 5]], jnp.int32)
    sc = SamplingConfig(max_new_tokens=3, eos_id=1, pad_id=0)
    g = policy.graphdef
    tv0, kl0 = sampled_distances(
        g, policy.params, policy.params, prompts, jax.random.key(2), sc, 64
    )
    np.testing.assert_allclose(np.asarray(tv0), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(kl0), 0.0, atol=1e-5)
    tv1, kl1 = sampled_distances(g, policy.params, far, prompts, jax.random.key(2), sc, 64)
    assert np.all(np.asarray(tv1) > 0.05) and np.all(np.asarray(tv1) <= 1.0)
    assert np.all(np.asarray(kl1) > 0.0)
