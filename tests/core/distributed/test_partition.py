"""Partition rules: which spec each parameter gets, fallbacks, optimizer-state mirroring, and
that placed arrays really carry the specs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from cliffjax.distributed import (
    Layout,
    MeshConfig,
    Rule,
    describe,
    make_mesh,
    partition_specs,
    path_str,
    spec_for,
    tree_specs,
)
from cliffjax.models import PRESETS, make_policy, preset_config

MESH_SHAPES = {"8x1x1": (8, 1, 1), "2x4x1": (2, 4, 1), "2x2x2": (2, 2, 2), "1x1x8": (1, 1, 8)}


def _shape(d, f, t):
    return {"data": d, "fsdp": f, "tensor": t}


def test_path_str_reads_nnx_state_paths():
    params = make_policy(preset_config("tiny", vocab_size=20), 0).params
    paths = {path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]}
    assert "layers/0/attn/qkv" in paths
    assert "embed/embedding" in paths
    assert "lm_head" in paths
    assert not any(p.endswith("/value") for p in paths)


@pytest.mark.parametrize(
    ("path", "shape", "mesh", "expected"),
    [
        # Column parallel over heads, FSDP on d_model (largest free dim).
        ("layers/0/attn/qkv", (128, 3, 4, 32), (1, 2, 2), P("fsdp", None, "tensor")),
        # Row parallel: heads of the out-projection over tensor.
        ("layers/0/attn/out", (4, 32, 128), (1, 2, 2), P("tensor", None, "fsdp")),
        ("layers/0/mlp/gate_up", (128, 2, 512), (1, 1, 8), P(None, None, "tensor")),
        ("layers/0/mlp/down", (512, 128), (1, 1, 8), P("tensor")),
        ("layers/0/mlp/down", (512, 128), (2, 4, 1), P("fsdp")),  # FSDP takes the largest dim
        ("lm_head", (128, 24), (1, 2, 4), P("fsdp", "tensor")),
        ("embed/embedding", (24, 128), (1, 2, 4), P("tensor", "fsdp")),
        # Norm scales are replicated whatever the mesh.
        ("layers/1/mlp_norm/scale", (128,), (1, 4, 2), P()),
        ("final_norm/scale", (128,), (1, 8, 1), P()),
        # nnx.Linear-style names.
        ("blocks/3/q_proj/kernel", (64, 64), (1, 1, 8), P(None, "tensor")),
        ("blocks/3/o_proj/kernel", (64, 64), (1, 1, 8), P("tensor")),
        ("blocks/3/up_proj/bias", (256,), (1, 1, 8), P("tensor")),
        # Layer-stacked kernel [L, d, F]: the rule aligns with the trailing dims.
        ("layers/mlp/gate_up", (6, 128, 2, 512), (1, 2, 4), P(None, "fsdp", None, "tensor")),
        # Pure data parallelism: everything replicated.
        ("layers/0/attn/qkv", (128, 3, 4, 32), (8, 1, 1), P()),
    ],
)
def test_spec_for_transformer_rules(path, shape, mesh, expected):
    from cliffjax.distributed import TRANSFORMER_RULES

    decision = spec_for(path, shape, _shape(*mesh), TRANSFORMER_RULES)
    assert decision.spec == expected
    assert decision.rule is not None


def test_indivisible_dims_fall_back_to_replication():
    from cliffjax.distributed import TRANSFORMER_RULES

    # Vocabulary 20 over 8-way tensor: not divisible, so the vocab dim stays whole.
    d = spec_for("embed/embedding", (20, 32), _shape(1, 1, 8), TRANSFORMER_RULES)
    assert d.spec == P() and d.dropped == ("tensor",)
    # 3 heads over tensor=2 -> heads whole; FSDP still takes d_model (divisible by 2).
    d = spec_for("layers/0/attn/qkv", (30, 3, 3, 10), _shape(1, 2, 2), TRANSFORMER_RULES)
    assert d.spec == P("fsdp") and "tensor" in d.dropped
    # Nothing divisible by fsdp=4: replicated, reported.
    d = spec_for("layers/0/mlp/down", (6, 10), _shape(1, 4, 1), TRANSFORMER_RULES)
    assert d.spec == P() and d.dropped == ("fsdp",)


def test_first_matching_rule_wins_and_unmatched_are_reported():
    rules = (Rule(r"special$", ("tensor",), fsdp=False), Rule(r"w$", (None, "tensor")))
    params = {
        "a": {"special": jnp.zeros((8,)), "w": jnp.zeros((4, 8))},
        "odd": jnp.zeros((8, 8)),
    }
    mesh = make_mesh(MeshConfig(fsdp=2, tensor=4))
    specs, decisions = partition_specs(params, mesh, rules)
    assert specs["a"]["special"] == P("tensor")
    assert specs["a"]["w"] == P("fsdp", "tensor")
    assert specs["odd"] == P()
    assert [d.path for d in decisions if d.rule is None] == ["odd"]


@pytest.mark.parametrize("preset", ["tiny", "small", "base100m"])
def test_every_preset_parameter_matches_its_intended_rule(preset):
    cfg = preset_config(preset, vocab_size=24)
    params = jax.eval_shape(lambda: make_policy(cfg, 0).params)
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    layout = Layout(mesh)
    assert layout.unmatched(params) == []
    decisions = layout.decisions(params)
    intended = {
        "attn/qkv": r"(^|/)attn/qkv$",
        "attn/out": r"(^|/)attn/out$",
        "mlp/gate_up": r"(^|/)mlp/gate_up$",
        "mlp/down": r"(^|/)mlp/down$",
        "_norm/scale": r"(^|/)[^/]*(norm|ln)[^/]*/(scale|bias)$",
        "lm_head": r"(^|/)lm_head$",
        "embed/embedding": "embed",
    }
    n_layers = PRESETS[preset]["n_layers"]
    # embedding, final norm, LM head + (2 norms, qkv, out, gate_up, down) per layer.
    assert len(decisions) == 3 + 6 * n_layers
    for d in decisions:
        key = next(k for k in intended if d.path.endswith(k))
        assert intended[key] in d.rule, (d.path, d.rule)
        # Every matrix is split both ways on 2x2x2 (all these dims are even); norms are not.
        if key == "_norm/scale":
            assert d.spec == P()
        else:
            assert set(d.spec) - {None} == {"fsdp", "tensor"}, (d.path, d.spec)


@pytest.fixture(scope="module")
def tiny_params():
    cfg = preset_config("tiny", vocab_size=20, n_heads=8, d_model=32)
    return make_policy(cfg, 0).params


@pytest.mark.parametrize("mesh_name", list(MESH_SHAPES))
def test_params_and_adam_state_carry_the_planned_shardings(tiny_params, mesh_name):
    mesh = make_mesh(MeshConfig(*MESH_SHAPES[mesh_name]))
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-3))
    layout = Layout(mesh)
    params = layout.place(tiny_params)
    opt_state = layout.init_opt_state(tx, params)
    want = jax.tree.map(lambda s: s.spec, layout.model(tiny_params))
    assert tree_specs(params) == want
    adam = opt_state[1][0]
    assert tree_specs(adam.mu) == want
    assert tree_specs(adam.nu) == want
    assert adam.count.sharding.spec == P()
    # Sharded for real: an FSDP/tensor-split leaf holds a fraction of the array per device.
    qkv = params["layers"][0]["attn"]["qkv"][...]
    ways = {"8x1x1": 1, "2x4x1": 4, "2x2x2": 4, "1x1x8": 8}[mesh_name]
    assert qkv.addressable_shards[0].data.size * ways == qkv.size
    mu_qkv = adam.mu["layers"][0]["attn"]["qkv"][...]
    assert mu_qkv.addressable_shards[0].data.size * ways == mu_qkv.size


def test_plain_jit_init_would_not_shard_adam_state(tiny_params):
    """The pitfall ``Layout.init_opt_state`` exists for (jax 0.10: jit of optimizer.init returns unsharded state)."""
    mesh = make_mesh(MeshConfig(fsdp=8))
    tx = optax.adam(1e-3)
    layout = Layout(mesh)
    params = layout.place(tiny_params)
    naive = jax.jit(tx.init)(params)
    good = layout.init_opt_state(tx, params)
    mu_naive = naive[0].mu["layers"][0]["mlp"]["down"][...]
    mu_good = good[0].mu["layers"][0]["mlp"]["down"][...]
    assert mu_good.sharding.spec == P("fsdp")
    assert mu_naive.addressable_shards[0].data.size == mu_naive.size  # full copy per device
    assert mu_good.addressable_shards[0].data.size * 8 == mu_good.size


def test_describe_lists_every_leaf_with_bytes_per_device(tiny_params):
    mesh = make_mesh(MeshConfig(tensor=8))
    layout = Layout(mesh)
    params = layout.place(tiny_params)
    text = describe(params)
    lines = text.splitlines()
    assert len(lines) == len(jax.tree.leaves(params))
    line = next(row for row in lines if row.startswith("layers/0/mlp/down"))
    assert "P('tensor',)" in line
    assert f"{64 * 32 * 4 // 8} B/dev" in line
    assert "mesh {'data': 1, 'fsdp': 1, 'tensor': 8}" in layout.summary(params)
    assert "dropped tensor" in layout.summary(params)  # vocab 20 on 8-way tensor
    np.testing.assert_array_equal(
        np.asarray(params["lm_head"][...]), np.asarray(tiny_params["lm_head"][...])
    )


def test_bytes_per_device_divides_by_the_shard_count():
    from cliffjax.distributed.partition import bytes_per_device

    params = {
        "layers": {"0": {"mlp": {"down": jax.ShapeDtypeStruct((64, 32), jnp.float32)}}},
        "final_norm": {"scale": jax.ShapeDtypeStruct((32,), jnp.float32)},
    }
    full = (64 * 32 + 32) * 4
    assert bytes_per_device(params, _shape(1, 1, 1)) == full
    assert bytes_per_device(params, _shape(8, 1, 1)) == full  # data parallel: replicated
    # FSDP 8 and tensor 8 both split the matrix 8 ways; the norm stays whole.
    assert bytes_per_device(params, _shape(1, 8, 1)) == 64 * 32 * 4 // 8 + 32 * 4
    assert bytes_per_device(params, _shape(1, 1, 8), copies=3) == 3 * (64 * 32 * 4 // 8 + 32 * 4)
    assert bytes_per_device(params, _shape(1, 2, 4)) == 64 * 32 * 4 // 8 + 32 * 4
