"""``model=hf`` through the main job: a tiny Qwen2 checkpoint whose vocabulary is the character
tokenizer's (20 ids) is warm-started with SFT and trained with GRPO by ``run()`` on addition
scored by correctness, format and length (a reward with variance before the model is right);
resuming from its checkpoint is bitwise-identical; the trained parameters export to a
directory transformers loads with equal logits; a checkpoint that does not fit the task's
tokenizer or context fails at config load, naming both sizes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from cliffjax.experiments.config import ConfigError, build_config, make_task, register_configs
from cliffjax.experiments.train import run
from cliffjax.models.build import build_policy
from cliffjax.models.llama import export_hf
from cliffjax.models.lora import count_trainable, fold_adapters
from cliffjax.models.policy import apply
from cliffjax.training.checkpoint import Checkpointer
from cliffjax.training.metrics import read_metrics
from cliffjax.training.sft import sft_optimizer
from cliffjax.training.state import init_state

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CONF = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "conf"))
SFT_STEPS, RL_STEPS = 4, 2
RUN = (
    "task=multi_reward",
    "task.n_eval=32",
    "trainer.progress=false",
    f"trainer.sft.steps={SFT_STEPS}",
    "trainer.sft.batch_size=16",
    "trainer.sft.optim.lr=3e-3",
    "trainer.sft.optim.warmup_steps=0",
    f"trainer.rl.steps={RL_STEPS}",
    "trainer.rl.prompts_per_step=4",
    "trainer.rl.group_size=4",
    "trainer.eval_every=2",
    "trainer.kl_every=2",
    "trainer.checkpoint.every=2",
    "trainer.checkpoint.keep=10",
)


def _checkpoint(path: str, vocab: int, max_positions: int = 64, seed: int = 0) -> str:
    torch.manual_seed(seed)
    cfg = transformers.Qwen2Config(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=vocab,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        initializer_range=0.1,
        eos_token_id=1,
        pad_token_id=0,
    )
    transformers.Qwen2ForCausalLM(cfg).save_pretrained(path)
    return path


def _config(*overrides):
    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return build_config(compose(config_name="config", overrides=list(overrides)))


@pytest.fixture(scope="module")
def ckpt20(tmp_path_factory) -> str:
    return _checkpoint(str(tmp_path_factory.mktemp("hf20") / "ckpt"), vocab=20)


@pytest.fixture(scope="module")
def base_run(ckpt20, tmp_path_factory):
    exp = _config("model=hf", f"model.path={ckpt20}", *RUN)
    run_dir = str(tmp_path_factory.mktemp("hf_run"))
    return exp, run_dir, run(exp, run_dir)


def test_sft_and_rl_steps_train_the_checkpoint(ckpt20, base_run):
    exp, run_dir, result = base_run
    start = build_policy(exp.model)
    n_torch = sum(
        p.numel() for p in transformers.AutoModelForCausalLM.from_pretrained(ckpt20).parameters()
    )
    assert result.summary["n_params"] == n_torch
    recs = read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    sft = [r for r in recs if r["phase"] == "sft"]
    rl = [r for r in recs if r["phase"] == "rl"]
    assert [r["step"] for r in sft] == list(range(1, SFT_STEPS + 1))
    assert [r["step"] for r in rl] == list(range(1, RL_STEPS + 1))
    assert all(np.isfinite(r["loss"]) and r["grad_norm"] > 0 for r in sft + rl)
    assert sft[-1]["loss"] < sft[0]["loss"]  # lr 3e-3 on a random init: the loss drops
    assert all("kl_ref" in r for r in rl)
    # Every parameter moved, and the reference is the SFT result, not the checkpoint.
    for a, b, c in zip(
        jax.tree.leaves(start.params),
        jax.tree.leaves(result.reference),
        jax.tree.leaves(result.params),
    ):
        assert not np.array_equal(np.asarray(a), np.asarray(b))
        assert not np.array_equal(np.asarray(b), np.asarray(c))
    ckpt = Checkpointer(os.path.join(run_dir, "checkpoints"), keep=10)
    assert ckpt.latest_step() == SFT_STEPS + RL_STEPS


def test_resume_from_the_warm_start_is_bitwise_identical(base_run, tmp_path):
    exp, run_dir, result = base_run
    resumed = str(tmp_path / "resumed")
    shutil.copytree(run_dir, resumed)
    ckpt_dir = os.path.join(resumed, "checkpoints")
    for name in os.listdir(ckpt_dir):
        if name.isdigit() and int(name) > SFT_STEPS:
            shutil.rmtree(os.path.join(ckpt_dir, name))
    again = run(
        dataclasses.replace(exp, trainer=dataclasses.replace(exp.trainer, resume=True)), resumed
    )
    for a, b in zip(jax.tree.leaves(result.params), jax.tree.leaves(again.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    timing = lambda k: k.endswith(("_time", "tokens_per_s"))
    strip = lambda recs: [{k: v for k, v in r.items() if not timing(k)} for r in recs]
    assert strip(read_metrics(os.path.join(resumed, "metrics.jsonl"))) == strip(
        read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    )


def test_trained_params_export_to_transformers_with_equal_logits(base_run, tmp_path):
    exp, _, result = base_run
    out = str(tmp_path / "exported")
    export_hf(build_policy(exp.model).graphdef, result.params, out)
    _assert_transformers_logits_equal(exp, result.params, out)


def _assert_transformers_logits_equal(exp, params, hf_dir: str) -> None:
    """transformers reading ``hf_dir`` gives our logits (1e-4) on 8 held-out prompts."""
    graphdef = build_policy(exp.model).graphdef
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    prompts, _ = make_task(exp.task).eval_set()
    tokens = jnp.asarray(prompts[:8])
    positions = jnp.broadcast_to(jnp.arange(tokens.shape[1], dtype=jnp.int32), tokens.shape)
    ours, _ = jax.jit(apply, static_argnums=0)(graphdef, params, tokens, positions)
    with torch.no_grad():
        theirs = reloaded(torch.tensor(np.asarray(tokens), dtype=torch.long)).logits.numpy()
    np.testing.assert_allclose(np.asarray(ours), theirs, atol=1e-4, rtol=0)


def _tokenizer_json(path: str, n: int) -> None:
    from tokenizers import Tokenizer, models

    vocab = {"<pad>": 0, "<eos>": 1, **{f"t{i}": i for i in range(2, n)}}
    Tokenizer(models.WordLevel(vocab, unk_token="<pad>")).save(os.path.join(path, "tokenizer.json"))
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump({"eos_token": "<eos>", "pad_token": "<pad>"}, f)


def test_vocab_mismatch_fails_at_config_load_naming_both_sizes(tmp_path):
    big = _checkpoint(str(tmp_path / "v24"), vocab=24)
    with pytest.raises(ConfigError, match=r"model\.path: .*vocab_size is 24 .*tokenizer of 20 ids"):
        _config("model=hf", f"model.path={big}", *RUN)
    # A table padded past the checkpoint's own tokenizer (as Qwen2.5's) is accepted.
    _tokenizer_json(big, 20)
    assert _config("model=hf", f"model.path={big}", *RUN).model.path == big
    small = _checkpoint(str(tmp_path / "v16"), vocab=16)
    with pytest.raises(ConfigError, match=r"vocab_size is 16 .*tokenizer of 20 ids"):
        _config("model=hf", f"model.path={small}", *RUN)


def test_unreadable_or_short_checkpoint_fails_at_config_load(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.path: no config\.json"):
        _config("model=hf", f"model.path={tmp_path}", *RUN)
    short = _checkpoint(str(tmp_path / "short"), vocab=20, max_positions=8)
    with pytest.raises(ConfigError, match=r"max_position_embeddings=8 must be >= "):
        _config("model=hf", f"model.path={short}", *RUN)


@pytest.fixture(scope="module")
def lora_run(ckpt20, tmp_path_factory):
    exp = _config(
        "model=hf",
        f"model.path={ckpt20}",
        "model.lora.rank=4",
        "model.lora.alpha=8",
        "trainer.export_hf=true",
        *RUN,
    )
    run_dir = str(tmp_path_factory.mktemp("hf_lora_run"))
    return exp, run_dir, run(exp, run_dir)


def test_lora_trains_only_adapters_against_the_warm_policy(ckpt20, lora_run):
    exp, run_dir, result = lora_run
    assert result.reference is None  # no copy: the reference is the base with adapters off
    s = result.summary
    assert s["n_trainable"] == count_trainable(result.params) < s["n_params"] / 4
    recs = read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    sft = [r for r in recs if r["phase"] == "sft"]
    rl = [r for r in recs if r["phase"] == "rl"]
    assert sft[-1]["loss"] < sft[0]["loss"]
    assert all("kl_ref" in r and np.isfinite(r["loss"]) for r in rl)
    # RL moved the adapters and left the base alone: the base is the warm start (its adapters
    # folded in), so "adapters off" - the KL reference - is the warm-started policy.
    start = build_policy(exp.model).params
    ckpt = Checkpointer(os.path.join(run_dir, "checkpoints"), keep=10)
    like = init_state(start, sft_optimizer(exp.trainer.sft), jax.random.key(0))
    warm, ref, meta = ckpt.restore(SFT_STEPS, like, None)
    ckpt.close()
    assert meta["phase"] == "sft" and ref is None
    folded = fold_adapters(warm.params, exp.model.lora.scale)
    flat = lambda t: dict(jax.tree_util.tree_flatten_with_path(t)[0])
    got, want, init = flat(result.params), flat(folded), flat(start)
    n_base_moved = 0
    for path, x in got.items():
        name = jax.tree_util.keystr(path)
        if "lora_" in name:
            assert not np.array_equal(np.asarray(x), np.asarray(want[path])), name
            continue
        np.testing.assert_allclose(np.asarray(x), np.asarray(want[path]), atol=1e-6, err_msg=name)
        n_base_moved += not np.array_equal(np.asarray(x), np.asarray(init[path]))
    assert n_base_moved > 0  # the warm start's adapters went into the adapted kernels


def test_lora_resume_from_the_warm_start_is_bitwise_identical(lora_run, tmp_path):
    exp, run_dir, result = lora_run
    resumed = str(tmp_path / "resumed")
    shutil.copytree(run_dir, resumed)
    shutil.rmtree(os.path.join(resumed, "hf_export"))
    ckpt_dir = os.path.join(resumed, "checkpoints")
    for name in os.listdir(ckpt_dir):
        if name.isdigit() and int(name) > SFT_STEPS + 1:
            shutil.rmtree(os.path.join(ckpt_dir, name))
    again = run(
        dataclasses.replace(exp, trainer=dataclasses.replace(exp.trainer, resume=True)), resumed
    )
    for a, b in zip(jax.tree.leaves(result.params), jax.tree.leaves(again.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_lora_run_exports_the_merged_policy(lora_run):
    exp, run_dir, result = lora_run
    out = result.summary["hf_export"]
    assert out == os.path.abspath(os.path.join(run_dir, "hf_export"))
    _assert_transformers_logits_equal(exp, result.params, out)


def test_lora_and_export_options_are_checked_at_config_load(ckpt20):
    with pytest.raises(ConfigError, match=r"model\.lora\.rank: LoRA adapters are implemented for"):
        _config("model=tiny", "model.lora.rank=4", *RUN)
    with pytest.raises(ConfigError, match=r"model\.lora\.targets: unknown projections \['qkv'\]"):
        _config("model=hf", f"model.path={ckpt20}", "model.lora.rank=4", "model.lora.targets=[qkv]")
    with pytest.raises(ConfigError, match=r"model\.lora\.rank must be an int >= 0"):
        _config("model=hf", f"model.path={ckpt20}", "model.lora.rank=-2")
    with pytest.raises(ConfigError, match=r"trainer\.export_hf: .*needs model=hf"):
        _config("trainer.export_hf=true", *RUN)
