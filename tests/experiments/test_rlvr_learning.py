"""RL from a JSONL file through host verifiers raises the held-out reward, with LoRA on and off.

A tiny random Qwen2 checkpoint with its own BPE tokenizer is warm-started by full-parameter SFT
on synthetic GSM8K-format word problems and exported (``trainer.export_hf``); each RL run then
starts from that exported checkpoint (``trainer.sft.steps=0``), as a run from a downloaded
pretrained model would. The reward is ``correct + 0.5 · format`` (``gsm8k`` and
``gsm8k_format`` verifiers on decoded text). The held-out score is the mean reward over 8
sampled completions of each of 64 held-out prompts, computed before and after RL with the
same sampling key (paired). Measured on this CPU: 0.224 before; after 24 steps GRPO 0.320
(all parameters) and 0.317 (rank-8 adapters), MHPO 0.309 and DISPO 0.304 (adapters). The
margin, 0.05, is over twice the sampling noise of the paired difference (about 0.02) of a
policy that did not learn.
"""

from __future__ import annotations

import os

import jax
import pytest
from hydra import compose, initialize_config_dir

from cliffjax.data import word_problems, write_jsonl
from cliffjax.experiments.config import build_config, make_task, register_configs
from cliffjax.experiments.train import run
from cliffjax.models.build import build_policy
from cliffjax.tasks.evaluate import evaluate_sampled

pytest.importorskip("torch")
pytest.importorskip("transformers")

CONF = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "conf"))
REWARDS = (
    "task.rewards=[{name:correct,verifier:gsm8k,weight:1.0},"
    "{name:format,verifier:gsm8k_format,weight:0.5}]"
)


def _config(path: str, data: str, *extra: str):
    overrides = [
        "model=hf",
        f"model.path={path}",
        "task=jsonl",
        f"task.path={data}",
        "task.n_eval=64",
        "task.max_new_tokens=32",
        REWARDS,
        "trainer.progress=false",
        "trainer.eval_every=0",
        *extra,
    ]
    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return build_config(compose(config_name="config", overrides=overrides))


def held_out_reward(exp, params) -> float:
    """Mean reward of 8 samples per held-out prompt, with a fixed sampling key."""
    task = make_task(exp.task)
    graphdef = build_policy(exp.model).graphdef
    out = evaluate_sampled(graphdef, params, task, jax.random.key(123), 8, (1,), batch_size=64)
    return out["reward_mean@n"]


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    from cliffjax.experiments.tiny_checkpoint import write_checkpoint

    root = tmp_path_factory.mktemp("rlvr")
    probs = word_problems(200, seed=1)
    data = str(root / "wp.jsonl")
    write_jsonl(data, probs)
    ckpt = write_checkpoint(
        str(root / "ckpt"),
        [p["question"] + " " + p["answer"] for p in probs],
        vocab_size=400,
        hidden_size=64,
        n_layers=2,
    )
    exp = _config(
        ckpt,
        data,
        "trainer.sft.steps=40",
        "trainer.sft.batch_size=16",
        "trainer.sft.optim.lr=3e-3",
        "trainer.rl.steps=0",
        "trainer.export_hf=true",
    )
    result = run(exp, str(root / "warm"))
    exported = result.summary["hf_export"]
    start = _config(exported, data)
    before = held_out_reward(start, build_policy(start.model).params)
    return root, data, exported, before


@pytest.mark.parametrize(
    "algo,lora,lr,margin",
    [
        ("grpo", False, "1e-4", 0.05),
        ("grpo", True, "2e-3", 0.05),
        ("mhpo", True, "2e-3", 0.05),
        ("dispo", True, "2e-3", 0.05),
    ],
)
def test_rl_raises_held_out_reward(warm, algo, lora, lr, margin):
    root, data, exported, before = warm
    exp = _config(
        exported,
        data,
        f"algo={algo}",
        "trainer.sft.steps=0",
        "trainer.rl.steps=24",
        "trainer.rl.prompts_per_step=8",
        "trainer.rl.group_size=4",
        f"trainer.rl.optim.lr={lr}",
        f"model.lora.rank={8 if lora else 0}",
    )
    result = run(exp, str(root / f"{algo}_lora{int(lora)}"))
    after = held_out_reward(exp, result.params)
    print(f"{algo} lora={lora}: held-out reward {before:.3f} -> {after:.3f}")
    assert after - before >= margin, (before, after)
    assert (result.reference is None) == lora
