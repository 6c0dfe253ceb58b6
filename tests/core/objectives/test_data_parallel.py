"""Data parallelism: per-shard (sum, denominator) pairs psum'd over 8 simulated devices give the
whole-batch loss and gradient (tests/conftest.py provides the 8 CPU devices). One row per
device, one of them empty (its shard has denominator 0)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from cliffjax.objectives import PolicyBatch, finalize_loss, get_objective


@pytest.mark.parametrize(
    ("name", "mode"),
    [("grpo", "seq-mean-token-mean"), ("dapo", "token-mean")],
)
def test_sharded_sum_and_denominator_equal_whole_batch(name, mode):
    if len(jax.devices()) < 8:
        pytest.skip("needs 8 (simulated) devices")
    spec = get_objective(name)
    cfg = dataclasses.replace(spec.default_config, aggregation=mode, beta=0.0)
    rng = np.random.default_rng(0)
    lengths = np.array([3, 5, 0, 1, 5, 2, 4, 5])
    batch = PolicyBatch(
        logp=jnp.asarray(-np.abs(rng.normal(size=(8, 5))), jnp.float32),
        logp_old=jnp.asarray(-np.abs(rng.normal(size=(8, 5))), jnp.float32),
        mask=jnp.asarray((np.arange(5)[None] < lengths[:, None]).astype(np.int32)),
        advantages=jnp.asarray(rng.normal(size=8), jnp.float32),
    )

    def loss_of(lp, b):
        s, d, _ = spec.loss(b._replace(logp=lp), cfg)
        return s, d

    def whole(lp, b):
        s, d = loss_of(lp, b)
        return finalize_loss(s, d)

    mesh = Mesh(np.array(jax.devices()[:8]), ("data",))

    def shard_loss(lp, b):
        s, d = loss_of(lp, b)  # this shard's pair
        return finalize_loss(jax.lax.psum(s, "data"), jax.lax.psum(d, "data"))

    sharded = jax.shard_map(shard_loss, mesh=mesh, in_specs=(P("data"), P("data")), out_specs=P())
    v_ref, g_ref = jax.value_and_grad(whole)(batch.logp, batch)
    v, g = jax.jit(jax.value_and_grad(sharded))(batch.logp, batch)
    assert float(v) == pytest.approx(float(v_ref), rel=1e-6, abs=1e-7)
    np.testing.assert_allclose(np.asarray(g), np.asarray(g_ref), rtol=1e-5, atol=1e-7)
