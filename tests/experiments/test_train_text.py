"""The main job on a text task: a tiny Qwen2 checkpoint with its own BPE tokenizer
(``cliffjax.experiments.tiny_checkpoint``) trained by SFT then GRPO on synthetic GSM8K-format
word problems (``task=jsonl``), with host verifiers as the reward, sampled pass@k evaluation
and a TensorBoard log; greedy completions do not depend on how much padding a prompt has."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from cliffjax.data import word_problems, write_jsonl
from cliffjax.experiments.config import build_config, make_task, register_configs
from cliffjax.experiments.train import run
from cliffjax.models.build import build_policy
from cliffjax.tasks.evaluate import completion_table
from cliffjax.training.metrics import read_metrics

pytest.importorskip("torch")
pytest.importorskip("transformers")

CONF = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "conf"))


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    from cliffjax.experiments.tiny_checkpoint import write_checkpoint

    root = tmp_path_factory.mktemp("text_run")
    probs = word_problems(80, seed=1)
    write_jsonl(root / "wp.jsonl", probs)
    ckpt = write_checkpoint(
        str(root / "ckpt"),
        [p["question"] + " " + p["answer"] for p in probs],
        vocab_size=400,
        hidden_size=32,
        n_layers=1,
    )
    register_configs()
    overrides = [
        "model=hf",
        f"model.path={ckpt}",
        "task=jsonl",
        f"task.path={root / 'wp.jsonl'}",
        "task.n_eval=8",
        "task.max_new_tokens=24",
        "task.rewards=[{name:correct,verifier:gsm8k,weight:1.0},"
        "{name:format,verifier:gsm8k_format,weight:0.5}]",
        "trainer.progress=false",
        "trainer.sft.steps=6",
        "trainer.sft.batch_size=8",
        "trainer.sft.optim.lr=3e-3",
        "trainer.sft.optim.warmup_steps=0",
        "trainer.rl.steps=2",
        "trainer.rl.prompts_per_step=4",
        "trainer.rl.group_size=4",
        "trainer.eval_every=0",
        "trainer.eval.n_samples=4",
        "trainer.eval.ks=[1,2,4]",
        "trainer.logging.samples=3",
        "trainer.logging.backends=[tensorboard]",
    ]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        exp = build_config(compose(config_name="config", overrides=overrides))
    run_dir = str(root / "run")
    return exp, run_dir, run(exp, run_dir)


def test_text_task_trains_and_evaluates(text_run):
    _exp, run_dir, result = text_run
    recs = read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    sft = [r for r in recs if r["phase"] == "sft"]
    rl = [r for r in recs if r["phase"] == "rl"]
    assert len(sft) == 6 and len(rl) == 2
    assert sft[-1]["loss"] < sft[0]["loss"]
    for r in rl:
        assert {"reward/correct", "reward/format", "loss", "kl_ref"} <= set(r)
        assert np.isfinite(r["loss"])
    last = rl[-1]
    for comp in ("", "format_"):
        p1, p2, p4 = (last[f"eval_{comp}pass@{k}"] for k in (1, 2, 4))
        assert 0 <= p1 <= p2 <= p4 <= 1
        assert last[f"eval_{comp}mean@n"] == pytest.approx(p1)
    rows = [json.loads(x) for x in open(os.path.join(run_dir, "samples.jsonl"))]
    assert {(r["phase"], r["step"]) for r in rows} >= {("init", 0), ("rl", 2)}
    assert all({"prompt", "completion", "reward", "correct", "format"} <= set(r) for r in rows)
    assert rows[0]["prompt"].startswith("user\n") and "How many" in rows[0]["prompt"]
    assert os.listdir(os.path.join(run_dir, "tensorboard"))
    assert result.summary["eval_accuracy_init"] == pytest.approx(
        next(r for r in recs if r["phase"] == "init")["eval_accuracy"]
    )


def test_greedy_completions_do_not_depend_on_padding(text_run):
    exp, _, result = text_run
    task = make_task(exp.task)
    graphdef = build_policy(exp.model).graphdef
    prompts, meta = task.eval_set()
    together = completion_table(graphdef, result.params, task, 8)
    lengths = (np.cumsum(np.asarray(prompts) != task.tokenizer.pad_id, axis=1) > 0).sum(1)
    assert len(set(lengths.tolist())) > 1  # the batch really mixes prompt lengths
    for i in range(3):
        one = jax.tree.map(lambda x, i=i: x[i : i + 1], meta)
        alone = completion_table(graphdef, result.params, task, 1, prompts[i : i + 1], one)
        assert alone[0]["completion"] == together[i]["completion"]
        assert alone[0]["reward"] == together[i]["reward"]
