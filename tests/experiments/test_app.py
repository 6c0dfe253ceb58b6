"""Every Hydra app exits 2 with one line for a config error (unknown key, wrong type, unknown
option, bad value), before any compute; the one line names the field."""

import json
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# One interpreter for all cases (imports once): each case calls an app's main() with argv set
# and records the exit status and what went to stderr.
SCRIPT = r"""
import contextlib, io, json, sys
from hydra.core.global_hydra import GlobalHydra
import cliffjax.experiments.policy_cliff as sweep
import cliffjax.experiments.sensitivity as sensitivity
import cliffjax.experiments.train as train
apps = {"train": train.main, "sweep": sweep.main, "sensitivity": sensitivity.main}
out, cases, run_dir = [], json.loads(sys.argv[1]), sys.argv[2]
for app, override in cases:
    sys.argv = [app, override, "hydra.run.dir=" + run_dir]
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err):
        try:
            apps[app]()
        except SystemExit as e:
            code = e.code
    GlobalHydra.instance().clear()
    out.append({"app": app, "override": override, "code": code, "err": err.getvalue()})
print(json.dumps(out))
"""

CASES = [
    ("train", "trainer.rl.stepz=3", "invalid config: trainer.rl.stepz: unknown key"),
    ("train", "trainer.rl.steps=abc", "invalid config: trainer.rl.steps: Value 'abc'"),
    ("train", "algo=nope", "invalid config: algo: unknown option 'nope'; choose one of"),
    (
        "train",
        "trainer.rl.optim.lr=inf",
        "invalid config: trainer.rl.optim.lr: must be a finite number",
    ),
    ("train", "trainer.rl.group_size=1", "invalid config: trainer.rl.group_size: must be >= 2"),
    ("sweep", "sweep.epz=[0,1]", "invalid config: sweep.epz: unknown key"),
    ("sweep", "algo.name=nope", "invalid config: algo.name:"),
    ("sensitivity", "trainer.rl.stepz=3", "invalid config: trainer.rl.stepz: unknown key"),
    ("sensitivity", "sweep.n_seeds=abc", "invalid config: sweep.n_seeds: Value 'abc'"),
]


def test_config_errors_exit_2_with_one_line(tmp_path):
    cases = [[app, override] for app, override, _ in CASES]
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(cases), str(tmp_path / "hydra")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for (app, override, needle), got in zip(CASES, results, strict=True):
        lines = [line for line in got["err"].splitlines() if line.strip()]
        assert got["code"] == 2, (app, override, got)
        assert len(lines) == 1 and lines[0].startswith(needle), (app, override, lines)
    assert not (tmp_path / "hydra" / "checkpoints").exists()
