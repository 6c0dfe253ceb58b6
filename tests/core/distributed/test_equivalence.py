"""Sharded == single device, on 8 simulated CPU devices.

For the meshes 8x1x1, 2x4x1, 2x2x2 and 1x1x8 (data x fsdp x tensor) the GRPO loss, its
gradients, the parameters after one AdamW step and after a short 3-step run, and one sampled
batch (same key) must equal the one-device results within float32 tolerance; parameters and
optimizer state must carry the planned shardings; a checkpoint saved on 8x1x1 restores onto
2x2x2 with the new shardings. The runs live in ``cliffjax.distributed.selfcheck`` (also a CLI for
real hardware); compiled once per mesh and shared through module-scoped fixtures.
"""

from __future__ import annotations

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from jax.sharding import PartitionSpec as P

from cliffjax.distributed import MeshConfig, make_mesh, tree_specs
from cliffjax.distributed.selfcheck import compare, make_problem, max_abs_diff, run_on_mesh

MESHES = {"8x1x1": (8, 1, 1), "2x4x1": (2, 4, 1), "2x2x2": (2, 2, 2), "1x1x8": (1, 1, 8)}

# float32: reductions in another order differ by a few ulps of the summed magnitude.
TOL = {
    "loss": 1e-5,
    "grads": 1e-5,
    "params_1_step": 1e-5,
    "params_n_steps": 2e-5,
    "train_losses": 1e-5,
    "sample_logp": 1e-5,
}


@pytest.fixture(scope="module")
def problem():
    return make_problem()


@pytest.fixture(scope="module")
def reference(problem):
    return run_on_mesh(problem, make_mesh(MeshConfig(), jax.devices()[:1]), "1x1x1")


@pytest.fixture(scope="module")
def results(problem):
    return {}


def _result(results, problem, name):
    if name not in results:
        results[name] = run_on_mesh(problem, make_mesh(MeshConfig(*MESHES[name])), name)
    return results[name]


@pytest.mark.parametrize("name", list(MESHES))
def test_mesh_matches_single_device(problem, reference, results, name):
    res = _result(results, problem, name)
    diffs = compare(reference, res)
    print(f"\n{name}: " + ", ".join(f"{k}={v:.3g}" for k, v in diffs.items()))
    for key, tol in TOL.items():
        assert diffs[key] <= tol, (name, key, diffs[key])
    assert diffs["sample_tokens_differ"] == 0
    # The run did something: parameters moved by far more than the tolerance.
    assert max_abs_diff(res.params_final, problem.params) > 100 * TOL["params_n_steps"]
    assert np.all(np.asarray(res.samples.completion_mask).sum(1) >= 1)


@pytest.mark.parametrize("name", list(MESHES))
def test_state_carries_planned_shardings(problem, results, name):
    res = _result(results, problem, name)
    want = jax.tree.map(lambda s: s.spec, res.layout.model(res.state.params))
    assert tree_specs(res.state.params) == want
    # Adam moments: the layout's path rules agree with optax.tree_map_params' mirroring.
    assert tree_specs(res.state.opt_state) == jax.tree.map(lambda s: s.spec, res.opt_shardings)
    adam = res.state.opt_state[1][0]
    assert tree_specs(adam.mu) == want and tree_specs(adam.nu) == want
    assert res.state.step.sharding.spec == P() and res.state.key.sharding.spec == P()
    expected_qkv = {
        "8x1x1": P(),
        "2x4x1": P("fsdp"),
        "2x2x2": P("fsdp", None, "tensor"),
        "1x1x8": P(None, None, "tensor"),
    }[name]
    assert res.state.params["layers"][0]["attn"]["qkv"][...].sharding.spec == expected_qkv
    # Vocabulary 20 cannot be split 8 ways: replicated on 1x1x8, split 2 ways on 2x2x2.
    embed = res.state.params["embed"]["embedding"][...].sharding.spec
    assert (
        embed
        == {"8x1x1": P(), "2x4x1": P(None, "fsdp"), "2x2x2": P("tensor", "fsdp"), "1x1x8": P()}[
            name
        ]
    )


def test_checkpoint_restores_across_meshes(problem, results, tmp_path):
    src = _result(results, problem, "8x1x1")
    dst = _result(results, problem, "2x2x2")
    mgr = ocp.CheckpointManager(
        tmp_path / "ckpt", options=ocp.CheckpointManagerOptions(enable_async_checkpointing=False)
    )
    mgr.save(3, args=ocp.args.StandardSave(src.state))
    mgr.wait_until_finished()
    # Target: the 2x2x2 layout of the same state, with concrete NamedShardings.
    target = dst.layout.abstract(src.state)
    restored = mgr.restore(3, args=ocp.args.StandardRestore(target))
    mgr.close()
    assert tree_specs(restored) == tree_specs(dst.state)
    assert restored.params["layers"][0]["attn"]["qkv"][...].sharding.mesh.shape == dict(
        data=2, fsdp=2, tensor=2
    )
    assert max_abs_diff(jax.device_get(restored), jax.device_get(src.state)) == 0.0


def test_trainer_checkpointer_resumes_on_another_mesh(problem, results, tmp_path):
    """``cliffjax.training.checkpoint.Checkpointer`` restores into the live state's shardings, so
    resuming with a different ``mesh=`` reshards (8x1x1 -> 1x1x8 here)."""
    from cliffjax.training.checkpoint import Checkpointer

    src = _result(results, problem, "8x1x1")
    dst = _result(results, problem, "1x1x8")
    ckpt = Checkpointer(str(tmp_path / "ckpt"), keep=1)
    ckpt.save(7, src.state, src.state.params, {"phase": "rl", "step": 7})
    state, reference, meta = ckpt.restore(7, dst.state, dst.state.params)
    ckpt.close()
    assert meta["step"] == 7
    assert tree_specs(state) == tree_specs(dst.state)
    assert tree_specs(reference) == tree_specs(dst.state.params)
    assert max_abs_diff(jax.device_get(state), jax.device_get(src.state)) == 0.0
