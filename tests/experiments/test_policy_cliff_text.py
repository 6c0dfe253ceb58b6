"""The policy-cliff sweep on a text task with a real-architecture model: a tiny Qwen2 checkpoint
with its own BPE tokenizer on synthetic GSM8K-format word problems (``model=hf task=jsonl``).

Two jobs share one warm start: job 0 trains ε ∈ {0, 0.3} in one vmapped program, job 1 trains
ε = 0.3 alone in the sequential driver (the one-job-per-ε route). Each writes its sample sets;
the report pairs every run with the ε = 0 run of its seed — job 1's across jobs — and writes
the sampled-answer distances with intervals and the noise floor. Bad text-sweep configs fail
at config load, naming the field.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from cliffjax.data import word_problems, write_jsonl
from cliffjax.experiments import policy_cliff_text as pct
from cliffjax.experiments.cliff_config import build_cliff_config, register_cliff_configs
from cliffjax.experiments.config import ConfigError
from cliffjax.experiments.report import write_report

pytest.importorskip("torch")
pytest.importorskip("transformers")

CONF = Path(__file__).resolve().parents[2] / "conf"
N_NEW = 12


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from cliffjax.experiments.tiny_checkpoint import write_checkpoint

    root = tmp_path_factory.mktemp("text_cliff")
    probs = word_problems(60, seed=2)
    write_jsonl(root / "wp.jsonl", probs)
    ckpt = write_checkpoint(
        str(root / "ckpt"),
        [p["question"] + " " + p["answer"] for p in probs],
        vocab_size=400,
        hidden_size=32,
        n_layers=1,
    )
    return root, ckpt


def _overrides(files, *extra):
    root, ckpt = files
    return [
        "sweep=text",
        "model=hf",
        f"model.path={ckpt}",
        "task=jsonl",
        f"task.path={root / 'wp.jsonl'}",
        "task.n_eval=6",
        f"task.max_new_tokens={N_NEW}",
        "trainer.sft.steps=0",
        "trainer.rl.steps=2",
        "trainer.rl.prompts_per_step=4",
        "trainer.rl.group_size=4",
        "trainer.rl.optim.lr=1e-2",
        "trainer.rl.optim.warmup_steps=0",
        "sweep.n_train_prompts=8",
        "sweep.n_eval_prompts=6",
        "sweep.n_eval_samples=8",
        "sweep.n_seeds=1",
        "sweep.eps=[0.0,0.3]",
        "sweep.n_boot=200",
        *extra,
    ]


def _job(files, *extra):
    register_cliff_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return build_cliff_config(
            compose(config_name="policy_cliff", overrides=_overrides(files, *extra))
        )


@pytest.fixture(scope="module")
def two_jobs(files):
    root, _ = files
    t0 = time.perf_counter()
    job0 = _job(files)
    assert job0.text and job0.sweep.answer_extractor == "gsm8k"  # "auto" from the verifier
    setup = pct.TextSetup(job0)
    sweep_dir = root / "multirun"
    t1 = time.perf_counter()
    out0 = pct.run_text_sweep(job0, sweep_dir / "0", setup, keep_params=True)
    job1 = dataclasses.replace(
        job0, sweep=dataclasses.replace(job0.sweep, eps=(0.3,), runs="sequential")
    )
    assert pct.pair_key(job1) == pct.pair_key(job0)
    out1 = pct.run_text_sweep(job1, sweep_dir / "1", setup, keep_params=True)
    report = write_report(sweep_dir)
    print(
        f"2-job text sweep: {time.perf_counter() - t0:.1f} s (config + setup {t1 - t0:.1f} s; "
        f"job 0 {out0['summary']['train_s']:.1f} s train, {out0['summary']['eval_s']:.1f} s "
        f"sampling; job 1 {out1['summary']['train_s']:.1f} s train)"
    )
    print((sweep_dir / "table.md").read_text())
    return job0, out0, out1, sweep_dir, report


def _check_interval(row, key):
    lo, mid, hi = row[f"{key}_lo"], row[key], row[f"{key}_hi"]
    assert all(math.isfinite(x) for x in (lo, mid, hi)), (key, row)
    assert lo <= mid + 1e-12 and mid <= hi + 1e-12, (key, lo, mid, hi)


def test_job_rows_pair_runs_with_their_baseline(two_jobs):
    _, out0, _, sweep_dir, _ = two_jobs
    rows = out0["rows"]
    assert [r["eps"] for r in rows] == [0.0, 0.3]
    for r in rows:
        assert r["n_prompts"] == 6 and r["n_samples"] == 8
        for k in (
            "tv_answer",
            "floor_answer",
            "excess_answer",
            "l2sq_answer",
            "tv_length",
            "d_correct",
        ):
            _check_interval(r, k)
        assert 0.0 <= r["tv_answer"] <= 1.0 and 0.0 <= r["tv_length"] <= 1.0
        assert r["objective"] == "grpo" and r["perturbation"] == "length"
    base, moved = rows
    # The ε = 0 row is the noise floor: two independent sample sets of one policy, which a
    # finite n puts well above the true distance 0.
    assert base["tv_answer"] == base["floor_answer"] > 0.05 and base["excess_answer"] == 0.0
    assert moved["floor_answer"] == base["floor_answer"]
    assert abs(base["l2sq_answer"]) < base["tv_answer"]  # unbiased: no floor to clear
    assert moved["excess_answer"] == pytest.approx(moved["tv_answer"] - moved["floor_answer"])
    # Files: two sample sets of the ε = 0 policy, one of the ε = 0.3 policy.
    sets = json.loads((sweep_dir / "0" / pct.SAMPLES_FILE).read_text())["sets"]
    assert [(s["eps"], s["set"]) for s in sets] == [(0.0, "a"), (0.0, "b"), (0.3, "a")]
    assert all(len(s["answers"]) == 6 and len(s["answers"][0]) == 8 for s in sets)
    assert (sweep_dir / "0" / pct.ROWS_FILE).read_text().count("\n") == 2
    summary = json.loads((sweep_dir / "0" / "summary.json").read_text())
    assert summary["mode"] == "text" and summary["runs"] == "vmap" and summary["n_runs"] == 2


def test_the_length_perturbation_shifts_the_training_reward(two_jobs):
    sweep_dir = two_jobs[3]
    curves = np.load(sweep_dir / "0" / "curves.npz")
    shift = curves["reward_seen_mean"][:, 0] - curves["reward_mean"][:, 0]
    assert shift[0] == 0.0  # ε = 0
    assert -0.3 <= shift[1] < 0.0  # ε · mean(−len/N) on the first rollouts


def test_sequential_run_equals_the_vmapped_run(two_jobs):
    _, out0, out1, _, _ = two_jobs
    for a, b in zip(jax.tree.leaves(out0["params"]), jax.tree.leaves(out1["params"])):
        np.testing.assert_allclose(np.asarray(a)[1], np.asarray(b)[0], atol=1e-4)
    assert out1["rows"] == []  # its ε = 0 run is in the other job


def test_report_pairs_runs_across_jobs(two_jobs):
    _, out0, _, sweep_dir, report = two_jobs
    text = report.read_text()
    assert "## Sampled-answer distances (text tasks)" in text
    assert "lower bound" in text and "noise floor" in text
    with (sweep_dir / "sampled_results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["job"], float(r["eps"])) for r in rows] == [("0", 0.0), ("0", 0.3), ("1", 0.3)]
    # The run of job 1 is the run (seed 0, ε = 0.3) of job 0, trained again: it is compared
    # with job 0's ε = 0 sample sets, so it has the same floor.
    assert float(rows[2]["floor_answer"]) == pytest.approx(out0["rows"][0]["floor_answer"])
    for r in rows:
        assert float(r["tv_answer_lo"]) <= float(r["tv_answer"]) <= float(r["tv_answer_hi"])
    table = (sweep_dir / "table.md").read_text()
    assert table.count("\n| grpo | length |") == 3


def test_chunked_sampling_keeps_prompt_order(two_jobs, files):
    job0 = two_jobs[0]
    job = dataclasses.replace(job0, sweep=dataclasses.replace(job0.sweep, sample_batch=32))
    setup = pct.TextSetup(job)  # 4 prompts x 8 samples per call: chunks of 4 and 2 (padded)
    params = setup.init_params
    key = jax.random.key(5)
    comp = setup.sample_completions(params, key)
    assert comp.shape == (6 * 8, N_NEW)
    np.testing.assert_array_equal(comp, setup.sample_completions(params, key))
    # The second chunk holds prompts 4 and 5: the same rows as sampling those prompts alone.
    alone = setup._programs["sample"](
        params,
        setup.ep[np.array([4, 5, 4, 4])],
        setup.eval_mask[np.array([4, 5, 4, 4])],
        jax.random.fold_in(key, 1),
    )
    np.testing.assert_array_equal(comp[32:], np.asarray(alone)[:16])


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            ("task.rewards=[{name:correct,verifier:finished,weight:1.0}]",),
            "sweep.answer_extractor: 'auto' knows no answer extractor for the verifier 'finished'",
        ),
        (("sweep.n_eval_samples=1",), "sweep.n_eval_samples: a text sweep"),
        (("sweep.perturbation=ties",), "sweep.perturbation: a text sweep perturbs"),
        (("sweep.mode=replay",), "sweep.mode: text sweeps run mode 'sweep'"),
        (("sweep.runs=parallel",), "sweep.runs must be one of"),
        (("sweep.answer_extractor=regex",), "sweep.answer_extractor must be one of"),
        (("sweep.sample_batch=4",), "sweep.sample_batch: must be 0 or >= sweep.n_eval_samples"),
    ],
)
def test_bad_text_sweep_config_names_the_field(files, extra, needle):
    with pytest.raises(ConfigError) as info:
        _job(files, *extra)
    assert needle in str(info.value)


def test_explicit_extractor_and_digit_only_fields(files):
    job = _job(
        files,
        "task.rewards=[{name:correct,verifier:finished,weight:1.0}]",
        "sweep.answer_extractor=last_number",
    )
    assert job.sweep.answer_extractor == "last_number"
    register_cliff_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="policy_cliff", overrides=["sweep.runs=sequential"])
    with pytest.raises(ConfigError, match=r"sweep\.runs: only text sweeps set it"):
        build_cliff_config(cfg)
