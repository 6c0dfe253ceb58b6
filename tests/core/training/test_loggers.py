"""Logging backends: metrics.jsonl, TensorBoard event files and an offline W&B run hold what
was logged; bad backend names fail at config time."""

from __future__ import annotations

import glob
import json
import os
import struct
import subprocess
import sys
import time

import pytest

from cliffjax.training.loggers import LoggingConfig, RunLogger
from cliffjax.training.metrics import read_metrics


def _tb_scalars(run_dir):
    from tensorboardX.proto import event_pb2

    out, texts = [], []
    for path in glob.glob(os.path.join(run_dir, "tensorboard", "events*")):
        data, i = open(path, "rb").read(), 0
        while i < len(data):  # TFRecord: length, crc, payload, crc
            n = struct.unpack("<Q", data[i : i + 8])[0]
            ev = event_pb2.Event()
            ev.ParseFromString(data[i + 12 : i + 12 + n])
            i += 12 + n + 4
            for v in ev.summary.value:
                if v.metadata.plugin_data.plugin_name == "text":
                    texts.append((v.tag, ev.step, v.tensor.string_val[0].decode()))
                else:
                    out.append((v.tag, ev.step, round(v.simple_value, 5)))
    return out, texts


LOG_SCRIPT = """
import sys
from cliffjax.training.loggers import LoggingConfig, RunLogger
logger = RunLogger(sys.argv[1], LoggingConfig(backends=("tensorboard", "wandb")), {"seed": 3})
for s in (1, 2):
    logger.write("rl", s, {"reward_mean": 0.25 * s, "bad": float("nan")})
logger.write("sft", 1, {"loss": 2.0})
logger.log_samples("rl", 2, [{"prompt": "2+2|?", "completion": "#### 4\\nok", "reward": 1.0}])
logger.close()
"""


def test_every_backend_holds_the_logged_metrics_and_samples(tmp_path):
    pytest.importorskip("tensorboardX")
    pytest.importorskip("wandb")
    run = str(tmp_path / "run")
    # In a process of its own, as in a training job: W&B's service process writes its record
    # file asynchronously and completes it after the job has exited.
    env = {**os.environ, "WANDB_SILENT": "true"}
    subprocess.run([sys.executable, "-c", LOG_SCRIPT, run], check=True, env=env, timeout=300)
    rows = [{"prompt": "2+2|?", "completion": "#### 4\nok", "reward": 1.0}]
    recs = read_metrics(os.path.join(run, "metrics.jsonl"))
    assert [(r["phase"], r["step"]) for r in recs] == [("rl", 1), ("rl", 2), ("sft", 1)]
    assert recs[0]["bad"] == "nan"  # jsonl keeps non-finite values as strings
    scalars, texts = _tb_scalars(run)
    assert sorted(scalars) == [
        ("rl/reward_mean", 1, 0.25),
        ("rl/reward_mean", 2, 0.5),
        ("sft/loss", 1, 2.0),
    ]  # non-finite values are not plotted
    assert texts and texts[0][:2] == ("rl/samples/text_summary", 2) and "2+2\\|?" in texts[0][2]
    samples = [json.loads(x) for x in open(os.path.join(run, "samples.jsonl"))]
    assert samples == [{"phase": "rl", "step": 2, **rows[0]}]
    (wandb_file,) = glob.glob(os.path.join(run, "wandb", "offline-run-*", "*.wandb"))
    for _ in range(120):  # the W&B service process writes the file after the job exits
        blob = open(wandb_file, "rb").read()
        if b"sft/loss" in blob:
            break
        time.sleep(0.5)
    assert b"rl/reward_mean" in blob and b"sft/loss" in blob and b"seed" in blob
    (table,) = glob.glob(
        os.path.join(run, "wandb", "offline-run-*", "files", "media", "table", "rl", "*.table.json")
    )
    assert json.load(open(table))["data"] == [["2+2|?", "#### 4\nok", 1.0]]


def test_disabled_logger_writes_nothing(tmp_path):
    logger = RunLogger(str(tmp_path / "r"), LoggingConfig(backends=("tensorboard",)), enabled=False)
    logger.write("rl", 1, {"x": 1.0})
    logger.log_samples("rl", 1, [{"a": 1}])
    logger.close()
    assert not os.path.exists(tmp_path / "r" / "metrics.jsonl")
    assert not os.path.exists(tmp_path / "r" / "tensorboard")


def test_bad_logging_config_names_the_field():
    with pytest.raises(ValueError, match="backends: unknown backend 'mlflow'"):
        LoggingConfig(backends=("mlflow",))
    with pytest.raises(ValueError, match="wandb_mode must be one of"):
        LoggingConfig(wandb_mode="cloud")
