"""Ctrl-C during training: the job saves the step it is on, exits 130 and prints the resume
command; resuming with that command ends bitwise where an uninterrupted run ends. A second
signal ends the process at once."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import jax
import numpy as np
from hydra import compose, initialize_config_dir

from cliffjax.experiments.config import build_config, register_configs
from cliffjax.experiments.train import run
from cliffjax.training.checkpoint import Checkpointer
from cliffjax.training.metrics import read_metrics

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CONF = os.path.join(ROOT, "conf")
SFT_STEPS, RL_STEPS = 0, 100  # no warm start: one compile fewer per process
# A tiny model and ~10 ms RL steps: the signal lands a few steps into RL, long before the end.
OVERRIDES = (
    "model.d_model=32",
    "model.n_layers=1",
    "model.n_heads=2",
    "model.d_ff=64",
    "model.max_seq_len=16",
    "task.n_eval=20",
    f"trainer.sft.steps={SFT_STEPS}",
    "trainer.sft.batch_size=8",
    "algo.beta=0",
    f"trainer.rl.steps={RL_STEPS}",
    "trainer.rl.prompts_per_step=4",
    "trainer.rl.group_size=4",
    "trainer.eval_every=0",
    "trainer.kl_every=0",
    "trainer.checkpoint.every=0",
    "trainer.progress=false",
)


def _config(*overrides):
    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return build_config(compose(config_name="config", overrides=list(overrides)))


def _first_rl_record(metrics, proc, timeout=120):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        if os.path.exists(metrics) and '"phase": "rl"' in open(metrics).read():
            return
        time.sleep(0.05)
    raise AssertionError("no RL step within the timeout")


def test_sigint_saves_exits_130_and_resume_is_bitwise(tmp_path):
    run_dir = str(tmp_path / "interrupted")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cliffjax.experiments.train", *OVERRIDES, f"run_dir={run_dir}"],
        cwd=str(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    try:
        _first_rl_record(os.path.join(run_dir, "metrics.jsonl"), proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-3000:]
    last = err.strip().splitlines()[-2:]
    head = last[0]
    assert head.startswith("interrupted by SIGINT after rl step "), err[-3000:]
    step = int(head.split("rl step ")[1].split(";")[0])
    assert 1 <= step < RL_STEPS
    assert head.endswith(f"checkpoint {SFT_STEPS + step} saved; resume with:")
    command = shlex.split(last[1])
    assert command[:3] == ["python", "-m", "cliffjax.experiments.train"]
    assert command[-2:] == ["trainer.resume=true", f"run_dir={run_dir}"]
    assert "Traceback" not in err

    ckpt = Checkpointer(os.path.join(run_dir, "checkpoints"), keep=3)
    assert ckpt.all_steps() == [SFT_STEPS + step]  # every=0: only the interrupted step
    assert ckpt.restore_meta(SFT_STEPS + step)["step"] == step
    ckpt.close()
    rl = [r for r in read_metrics(os.path.join(run_dir, "metrics.jsonl")) if r["phase"] == "rl"]
    assert [r["step"] for r in rl] == list(range(1, step + 1))

    # Resume with the printed overrides; compare with an uninterrupted run.
    resumed = run(_config(*command[3:-1]), run_dir)
    straight_dir = str(tmp_path / "straight")
    straight = run(_config(*OVERRIDES), straight_dir)
    for a, b in zip(jax.tree.leaves(straight.params), jax.tree.leaves(resumed.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    timing = lambda k: k.endswith(("_time", "tokens_per_s"))
    strip = lambda d: [
        {k: v for k, v in r.items() if not timing(k)}
        for r in read_metrics(os.path.join(d, "metrics.jsonl"))
    ]
    assert strip(run_dir) == strip(straight_dir)
    manifest = json.load(open(os.path.join(run_dir, "manifest.json")))
    assert len(manifest["resumes"]) == 1 and manifest["resumes"][0]["changed"] == []


def test_second_signal_exits_at_once(tmp_path):
    # The handler alone (no JAX): after the first SIGINT the process keeps sleeping; the
    # second one ends it by the default action (killed by SIGINT, no clean-up).
    script = (
        "import sys, time\n"
        "from cliffjax.training.signals import StopRequest\n"
        "with StopRequest().installed():\n"
        "    print('ready', flush=True)\n"
        "    for _ in range(600):\n"
        "        time.sleep(0.05)\n"
        "print('finished normally', flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert proc.poll() is None  # the first one only asked for a stop
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        waited = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGINT
    assert "finished normally" not in out and waited < 5
    assert "SIGINT: stopping after the current step" in err
