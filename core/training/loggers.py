"""Where a run's metrics go: ``metrics.jsonl`` always, TensorBoard and Weights & Biases on demand.

    logger = RunLogger(run_dir, LoggingConfig(backends=("tensorboard", "wandb")), config)
    logger.write("rl", step, {"reward_mean": 0.4, ...})        # every backend
    logger.log_samples("rl", step, [{"prompt": ..., "completion": ..., "reward": ...}])
    logger.close()

* ``metrics.jsonl`` (:class:`~cliffjax.training.metrics.MetricsWriter`): one JSON object per
  logged step; the file the tests, the resume logic and the reports read.
* ``tensorboard``: event files under ``<run_dir>/tensorboard`` (``tensorboardX``; view with
  ``tensorboard --logdir <run_dir>``), scalars tagged ``<phase>/<metric>`` (``@`` written ``_at_``: ``eval_pass_at_4``), completion tables
  as markdown text.
* ``wandb``: a Weights & Biases run in ``<run_dir>/wandb`` with the validated config; the
  default mode ``offline`` needs no network or account (``wandb sync <run_dir>/wandb/...``
  uploads later), ``online`` logs live. Each phase has its own step axis
  (``<phase>/step``), completion tables are ``wandb.Table`` s.

Completion tables (``log_samples``) are also appended to ``<run_dir>/samples.jsonl``. Both
extra backends are optional installs (``pip install 'cliffjax[logging]'``); asking for one
that is not installed fails at start-up, naming the package.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cliffjax.training.config import LoggingConfig
from cliffjax.training.metrics import MetricsWriter


def check_backends(cfg: LoggingConfig) -> None:
    """Raise ``ImportError`` naming the package of a requested backend that is missing."""
    packages = {"tensorboard": "tensorboardX", "wandb": "wandb"}
    for b in cfg.backends:
        try:
            __import__(packages[b])
        except ImportError as e:
            raise ImportError(
                f"trainer.logging.backends: {b!r} needs the {packages[b]} package "
                "(pip install 'cliffjax[logging]')"
            ) from e


def _finite(metrics: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        v = float(v)
        if np.isfinite(v):
            out[k] = v
    return out


class RunLogger:
    """All of a run's logging (module docstring). ``enabled=False`` (processes other than 0 of
    a multi-process run) writes nothing."""

    def __init__(
        self,
        run_dir: str,
        cfg: LoggingConfig | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        enabled: bool = True,
        run_name: str | None = None,
    ) -> None:
        cfg = LoggingConfig() if cfg is None else cfg
        self.cfg = cfg
        self._pending: list[dict[str, Any]] = []
        self.run_dir = run_dir
        self.enabled = enabled
        self.jsonl = MetricsWriter(
            os.path.join(run_dir, "metrics.jsonl") if enabled else os.devnull
        )
        self._tb = None
        self._wandb = None
        self._phases: set[str] = set()
        if not enabled:
            return
        check_backends(cfg)
        if "tensorboard" in cfg.backends:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(run_dir, "tensorboard"))
        if "wandb" in cfg.backends:
            import wandb

            os.makedirs(os.path.join(run_dir, "wandb"), exist_ok=True)
            self._wandb = wandb.init(
                project=cfg.wandb_project,
                entity=cfg.wandb_entity,
                mode=cfg.wandb_mode,
                dir=run_dir,
                name=run_name or os.path.basename(os.path.normpath(run_dir)),
                config=dict(config or {}),
                reinit="finish_previous",
            )

    @property
    def path(self) -> str:
        """The ``metrics.jsonl`` path."""
        return self.jsonl.path

    def _wandb_phase(self, phase: str) -> None:
        if phase not in self._phases:
            self._phases.add(phase)
            self._wandb.define_metric(f"{phase}/step")
            self._wandb.define_metric(f"{phase}/*", step_metric=f"{phase}/step")

    def queue_samples(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Hold a completion table until the next :meth:`write`, which logs it at its step
        (an evaluation computes the rows before the step's metrics are written)."""
        self._pending = [dict(r) for r in rows]

    def write(self, phase: str, step: int, metrics: Mapping[str, float]) -> None:
        """Log one step's metrics (and a queued completion table) to every backend."""
        self.jsonl.write(phase, step, metrics)
        if self._pending:
            rows, self._pending = self._pending, []
            self.log_samples(phase, step, rows)
        if not self.enabled:
            return
        finite = _finite(metrics)
        if self._tb is not None:
            for k, v in finite.items():  # TensorBoard tags allow no "@" (pass@k)
                self._tb.add_scalar(f"{phase}/{k}".replace("@", "_at_"), v, int(step))
            self._tb.flush()
        if self._wandb is not None:
            self._wandb_phase(phase)
            rec = {f"{phase}/{k}": v for k, v in finite.items()}
            rec[f"{phase}/step"] = int(step)
            self._wandb.log(rec)

    def log_samples(self, phase: str, step: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """Log a table of completions (one dict per completion, same keys in every row)."""
        if not self.enabled or not rows:
            return
        with open(os.path.join(self.run_dir, "samples.jsonl"), "a", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps({"phase": phase, "step": int(step), **r}) + "\n")
        cols = list(rows[0])
        if self._tb is not None:
            cell = lambda v: str(v).replace("|", "\\|").replace("\n", "<br>")
            lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            lines += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for r in rows]
            self._tb.add_text(f"{phase}/samples", "\n".join(lines), int(step))
            self._tb.flush()
        if self._wandb is not None:
            import wandb

            self._wandb_phase(phase)
            table = wandb.Table(columns=cols, data=[[r[c] for c in cols] for r in rows])
            self._wandb.log({f"{phase}/samples": table, f"{phase}/step": int(step)})

    def close(self) -> None:
        """Flush and close every backend."""
        self.jsonl.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
