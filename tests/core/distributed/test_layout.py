"""``Layout``: kind-based shardings and ``Layout.jit``, checked on a supervised step built from
the trainer's loss (``cliffjax.training.sft.sequence_nll``), optimizer and train state."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from cliffjax.distributed import (
    Layout,
    MeshConfig,
    jit_maybe_sharded,
    make_mesh,
    tree_specs,
)
from cliffjax.models import make_policy, preset_config
from cliffjax.training.config import OptimConfig
from cliffjax.training.sft import sequence_nll
from cliffjax.training.state import TrainState, make_optimizer


@pytest.fixture(scope="module")
def setup():
    cfg = preset_config("tiny", vocab_size=24, n_heads=8)
    graphdef, params = make_policy(cfg, 0)
    tx = make_optimizer(OptimConfig(lr=1e-3, warmup_steps=0), 10)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 24, (3, 8, 12)).astype(np.int32)
    mask = (rng.random((3, 8, 12)) < 0.7).astype(np.int32)
    return graphdef, params, tx, tokens, mask


def _state(params, tx):
    return TrainState(params, tx.init(params), jnp.zeros((), jnp.int32), jax.random.PRNGKey(0))


def test_model_kind_mirrors_params_onto_optimizer_state(setup):
    _, params, tx, _, _ = setup
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    abstract = jax.eval_shape(lambda: _state(params, tx))
    layout = Layout(mesh)
    sh = layout.model(abstract)
    spec = lambda t: jax.tree.map(lambda s: s.spec, t)
    # path rules on the state == optax.tree_map_params mirroring of the parameters
    assert spec(sh.opt_state) == spec(layout.opt_state_shardings(tx, abstract.params))
    assert sh.step.spec == P() and sh.key.spec == P()  # integer leaves replicated
    assert spec(sh.params)["layers"][1]["mlp"]["down"] == P("tensor", "fsdp")


def test_kinds_are_validated_and_batches_checked(setup):
    layout = Layout(make_mesh(MeshConfig(data=8)))
    with pytest.raises(ValueError, match="kind='params'"):
        layout.jit(lambda x: x, ("params",), "model")
    with pytest.raises(ValueError, match="rules"):
        Layout(layout.mesh, rules="megatron")
    f = layout.jit(lambda x: x.sum(), ("batch",), "replicated")
    with pytest.raises(ValueError, match="not divisible by data\\*fsdp = 8"):
        f(np.ones((6, 2), np.float32))


def test_without_layout_it_is_plain_jit():
    f = jit_maybe_sharded(lambda x: x * 2, None, ("batch",), "batch")
    assert isinstance(f, type(jax.jit(lambda x: x)))
    np.testing.assert_array_equal(np.asarray(f(np.ones(3))), 2 * np.ones(3))


def _run_sft(layout, setup):
    graphdef, params, tx, tokens, mask = setup

    def sft_step(state: TrainState, tokens, loss_mask):
        def loss_fn(p):
            nll, n, _ = sequence_nll(graphdef, p, tokens, loss_mask)
            return nll / jnp.maximum(n, 1.0)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, opt_state, state.step + 1, state.key), {"loss": loss}

    step = layout.jit(
        sft_step,
        in_kinds=("model", "batch", "batch"),
        out_kinds=("model", "replicated"),
        donate_argnums=(0,),
    )
    init = layout.jit(tx.init, ("model",), "model")
    placed = layout.place(params)
    state = layout.place(
        TrainState(placed, init(placed), jnp.zeros((), jnp.int32), jax.random.PRNGKey(0))
    )
    losses = []
    for i in range(tokens.shape[0]):
        old = state
        state, metrics = step(state, tokens[i], mask[i])
        losses.append(float(metrics["loss"]))
        assert old.params["lm_head"][...].is_deleted()  # donated: updated in place
    return state, losses


def test_trainer_sft_step_sharded_matches_one_device(setup):
    ref_state, ref_losses = _run_sft(Layout(make_mesh(MeshConfig(), jax.devices()[:1])), setup)
    layout = Layout(make_mesh(MeshConfig(data=2, fsdp=2, tensor=2)))
    state, losses = _run_sft(layout, setup)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-6, atol=1e-6)
    for a, b in zip(jax.tree.leaves(jax.device_get(state)), jax.tree.leaves(ref_state)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    assert tree_specs(state) == jax.tree.map(lambda s: s.spec, layout.model(state))
    assert int(state.step) == 3


def test_scoring_sharded_matches_one_device(setup):
    """Teacher-forced per-token log-probs (``cliffjax.sampling.score``), rows split on 2x2x2."""
    from cliffjax.sampling import score

    graphdef, params, _, tokens, _ = setup
    prompts, completions = tokens[0][:, :5], tokens[0][:, 5:]

    def run(layout):
        f = layout.jit(
            lambda p, pr, c: score(graphdef, p, pr, c), ("model", "batch", "batch"), "batch"
        )
        return f(layout.place(params), prompts, completions)

    ref = run(Layout(make_mesh(MeshConfig())))
    out = run(Layout(make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))))
    assert out.sharding.spec == P(("data", "fsdp"), None)
    assert out.shape == (8, 7)
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref), rtol=1e-6, atol=1e-6)


def test_constrain_rows_is_a_no_op_without_a_mesh_and_splits_rows_with_one():
    from cliffjax.distributed import constrain_rows

    x = np.arange(16 * 3, dtype=np.float32).reshape(16, 3)
    out = jax.jit(lambda a: constrain_rows(a) + 1)(x)  # no mesh context: plain
    np.testing.assert_array_equal(np.asarray(out), x + 1)
    layout = Layout(make_mesh(MeshConfig(data=2, fsdp=2, tensor=2)))
    # Replicated in, no output kind forcing rows: the constraint alone splits them 4 ways.
    f = layout.jit(lambda a: constrain_rows(a) * 2, ("replicated",), "replicated")
    np.testing.assert_array_equal(np.asarray(f(x)), 2 * x)
    with jax.set_mesh(layout.mesh):
        y = jax.jit(lambda a: constrain_rows(a) * 2)(x)
        odd = jax.jit(lambda a: constrain_rows(a))(np.ones((6, 3), np.float32))
    assert y.sharding.spec[0] == ("data", "fsdp")  # rows split over data x fsdp
    assert odd.shape == (6, 3)  # 6 rows do not split 4 ways: left alone


@functools.partial(jax.jit, static_argnames=("scale",), donate_argnums=0)
def _scaled_step(state, batch, *, scale: float):
    return jax.tree.map(lambda p: p - scale * jnp.mean(batch), state), {"m": jnp.mean(batch)}


def test_sharded_partial_binds_static_args_and_memoises():
    from cliffjax.distributed import sharded_partial

    plain = sharded_partial(
        _scaled_step, None, ("model", "batch"), ("model", "replicated"), scale=0.5
    )
    assert isinstance(plain, functools.partial) and plain.func is _scaled_step
    layout = Layout(make_mesh(MeshConfig(fsdp=8)))
    kinds = (("model", "batch"), ("model", "replicated"))
    a = sharded_partial(_scaled_step, layout, *kinds, donate_argnums=(0,), scale=0.5)
    b = sharded_partial(_scaled_step, layout, *kinds, donate_argnums=(0,), scale=0.5)
    c = sharded_partial(_scaled_step, layout, *kinds, donate_argnums=(0,), scale=0.25)
    assert a is b and a is not c
    state = layout.place({"mlp": {"down": np.ones((16, 8), np.float32)}})
    batch = np.arange(8, dtype=np.float32)
    new, metrics = a(state, batch)
    assert float(metrics["m"]) == 3.5
    assert new["mlp"]["down"].sharding.spec == P("fsdp")
    np.testing.assert_allclose(np.asarray(new["mlp"]["down"]), 1 - 0.5 * 3.5)
    assert state["mlp"]["down"].is_deleted()  # donated
    ref, _ = plain({"mlp": {"down": np.ones((16, 8), np.float32)}}, batch)
    np.testing.assert_allclose(np.asarray(ref["mlp"]["down"]), np.asarray(new["mlp"]["down"]))
