"""Checkpoint loading errors, export back to transformers, a training step on a loaded model,
and sharded loading on 8 simulated devices."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from cliffjax.models.llama import load_hf
from cliffjax.models.llama.params import export_hf
from cliffjax.models.policy import apply
from cliffjax.training.config import OptimConfig
from cliffjax.training.sft import make_sft_step
from cliffjax.training.state import init_state, make_optimizer

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VOCAB = 300
forward = jax.jit(apply, static_argnums=0)


def _copy(src: str, dst: str) -> str:
    shutil.copytree(src, dst)
    return dst


def _rewrite(path: str, edit) -> None:
    file = os.path.join(path, "model.safetensors")
    tensors = load_file(file)
    edit(tensors)
    save_file(tensors, file, metadata={"format": "pt"})


def test_missing_tensor_is_named(hf_checkpoints, tmp_path):
    path = _copy(hf_checkpoints["llama3_gqa_untied"][0], tmp_path / "ckpt")
    _rewrite(path, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
    with pytest.raises(
        ValueError, match=r"missing tensors: \['model.layers.1.mlp.up_proj.weight'\]"
    ):
        load_hf(str(path))


def test_unexpected_tensor_is_named(hf_checkpoints, tmp_path):
    path = _copy(hf_checkpoints["llama3_gqa_untied"][0], tmp_path / "ckpt")
    _rewrite(path, lambda t: t.update({"model.extra.weight": np.zeros((3,), np.float32)}))
    with pytest.raises(ValueError, match=r"unexpected tensors: \['model.extra.weight'\]"):
        load_hf(str(path))


def test_wrong_shape_names_tensor_and_both_shapes(hf_checkpoints, tmp_path):
    path = _copy(hf_checkpoints["llama3_gqa_untied"][0], tmp_path / "ckpt")
    name = "model.layers.0.self_attn.k_proj.weight"
    _rewrite(path, lambda t: t.update({name: np.zeros((16, 64), np.float32)}))
    with pytest.raises(
        ValueError, match=r"k_proj.weight' has shape \(64, 16\).*expects \(64, 32\)"
    ):
        load_hf(str(path))


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("model_type", "gpt2", "model_type='gpt2' is not supported"),
        ("use_sliding_window", True, "use_sliding_window=True is not supported"),
        ("rope_parameters", {"rope_type": "yarn", "factor": 2.0}, "rope_type='yarn'"),
        ("hidden_act", "gelu", "hidden_act='gelu'"),
    ],
)
def test_unsupported_config_field_is_named(hf_checkpoints, tmp_path, field, value, message):
    path = _copy(hf_checkpoints["qwen3_qknorm_tied"][0], tmp_path / "ckpt")
    file = os.path.join(path, "config.json")
    with open(file) as f:
        hf = json.load(f)
    hf[field] = value
    with open(file, "w") as f:
        json.dump(hf, f)
    with pytest.raises(ValueError, match=message):
        load_hf(str(path))


def test_sft_step_then_export_reloads_in_transformers(hf_checkpoints, tmp_path):
    pol = load_hf(hf_checkpoints["qwen2_bias_sharded"][0])
    optim = OptimConfig(lr=1e-2, warmup_steps=0)
    step = make_sft_step(pol.graphdef, optim, total_steps=3)
    state = init_state(pol.params, make_optimizer(optim, 3), jax.random.key(0))
    tokens = jnp.asarray(np.random.RandomState(0).randint(0, VOCAB, size=(4, 12)), jnp.int32)
    mask = jnp.ones_like(tokens)
    losses = []
    for _ in range(3):
        state, metrics = step(state, tokens, mask)
        losses.append(float(metrics["loss"]))
    assert np.isfinite(losses).all() and losses[-1] < losses[0]

    out = tmp_path / "exported"
    export_hf(pol.graphdef, state.params, str(out))
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(str(out)).eval()
    positions = jnp.broadcast_to(jnp.arange(12, dtype=jnp.int32), tokens.shape)
    ours, _ = forward(pol.graphdef, state.params, tokens, positions)
    with torch.no_grad():
        theirs = reloaded(torch.tensor(np.asarray(tokens), dtype=torch.long)).logits.numpy()
    np.testing.assert_allclose(np.asarray(ours), theirs, atol=1e-4, rtol=0)
    # ... and the exported directory loads back into the same parameters.
    again = load_hf(str(out))
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(again.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_bfloat16_checkpoint_loads_and_runs_in_bfloat16(hf_checkpoints, tmp_path):
    path, _ = hf_checkpoints["llama_tied_sharded"]
    bf16_dir = str(tmp_path / "bf16")
    copy = transformers.AutoModelForCausalLM.from_pretrained(path).to(torch.bfloat16)
    copy.save_pretrained(bf16_dir)
    pol32 = load_hf(bf16_dir, dtype="float32")
    ref = copy.model.layers[0].mlp.down_proj.weight.detach().float().numpy().T
    np.testing.assert_array_equal(
        np.asarray(pol32.params["layers"][0]["mlp"]["down_proj"]["kernel"][...]), ref
    )
    pol = load_hf(bf16_dir, dtype="bfloat16")
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(pol.params))
    tokens = jnp.asarray(np.random.RandomState(5).randint(0, VOCAB, size=(1, 8)), jnp.int32)
    pos = jnp.arange(8, dtype=jnp.int32)[None]
    logits, _ = forward(pol.graphdef, pol.params, tokens, pos)
    ref_logits, _ = forward(pol32.graphdef, pol32.params, tokens, pos)
    assert logits.dtype == jnp.float32
    err = float(jnp.max(jnp.abs(logits - ref_logits)))
    assert err < 0.05 * float(jnp.max(jnp.abs(ref_logits))), err


_SHARDED_SCRIPT = textwrap.dedent(
    """
    import sys
    import jax, jax.numpy as jnp, numpy as np
    from cliffjax.distributed import Layout, MeshConfig, make_mesh
    from cliffjax.models.llama import load_hf
    from cliffjax.models.policy import apply

    assert jax.device_count() == 8
    path = sys.argv[1]
    layout = Layout(make_mesh(MeshConfig(data=2, fsdp=2, tensor=2)))
    sharded = load_hf(path, layout=layout)
    single = load_hf(path)
    q = sharded.params["layers"][0]["attn"]["q_proj"]["kernel"][...]
    assert q.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor"), q.sharding.spec
    assert max(s.data.size for s in q.addressable_shards) == q.size // 4
    tokens = jnp.asarray(np.random.RandomState(0).randint(0, 300, size=(4, 10)), jnp.int32)
    pos = jnp.broadcast_to(jnp.arange(10, dtype=jnp.int32), tokens.shape)
    f = jax.jit(apply, static_argnums=0)
    a = np.asarray(f(sharded.graphdef, sharded.params, tokens, pos)[0])
    b = np.asarray(f(single.graphdef, single.params, tokens, pos)[0])
    print("max_diff", float(np.abs(a - b).max()))
    assert np.abs(a - b).max() <= 1e-5
    # LoRA adapters on the mesh: B of a column-parallel projection splits like its kernel,
    # A of a row-parallel one splits its inputs; the adapted logits equal one device's.
    from cliffjax.models.lora import LoRAConfig, trainable, with_trainable
    lora = LoRAConfig(rank=4, alpha=8.0)
    ls, l1 = load_hf(path, layout=layout, lora=lora), load_hf(path, lora=lora)
    attn = ls.params["layers"][0]["attn"]
    P = jax.sharding.PartitionSpec
    assert attn["q_proj"]["lora_b"][...].sharding.spec == P(None, "tensor")
    assert attn["o_proj"]["lora_a"][...].sharding.spec == P("tensor")
    def rand(params):
        leaves, tdef = jax.tree.flatten(trainable(params))
        keys = jax.random.split(jax.random.key(1), len(leaves))
        new = [0.2 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)]
        new = [jax.device_put(n, x.sharding) for n, x in zip(new, leaves)]
        return with_trainable(params, jax.tree.unflatten(tdef, new))
    a = np.asarray(f(ls.graphdef, rand(ls.params), tokens, pos)[0])
    b = np.asarray(f(l1.graphdef, rand(l1.params), tokens, pos)[0])
    print("lora_max_diff", float(np.abs(a - b).max()))
    assert np.abs(a - b).max() <= 1e-5
    """
)


def test_sharded_load_on_8_devices_matches_one_device(hf_checkpoints):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    proc = subprocess.run(
        [sys.executable, "-c", _SHARDED_SCRIPT, hf_checkpoints["qwen3_qknorm_tied"][0]],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "max_diff" in proc.stdout and "lora_max_diff" in proc.stdout
