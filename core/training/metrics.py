"""Per-step metrics: JSON lines in the run directory, plus small host-side helpers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np


def to_host(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Scalar device arrays -> Python floats (one transfer for the whole dict)."""
    host = jax.device_get(dict(metrics))
    return {k: float(np.asarray(v)) for k, v in host.items()}


class MetricsWriter:
    """Append-only ``metrics.jsonl``: one JSON object per logged step.

    Every record carries ``phase`` and ``step``. On resume the file is truncated to the records
    at or before the resumed step, so the file equals the one of an uninterrupted run.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8")

    def write(self, phase: str, step: int, metrics: Mapping[str, float]) -> None:
        """Append one record (non-finite floats are written as strings, JSON has no NaN)."""
        rec: dict[str, Any] = {"phase": phase, "step": int(step)}
        for k, v in metrics.items():
            v = float(v)
            rec[k] = v if np.isfinite(v) else str(v)
        self._fh.write(json.dumps(rec) + "\n")
        self._fh.flush()

    def close(self) -> None:
        """Close the file."""
        self._fh.close()


def read_metrics(path: str) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` file, in order."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def truncate_metrics(path: str, keep: Callable[[dict[str, Any]], bool]) -> None:
    """Rewrite ``path`` keeping only records for which ``keep(record)`` is true."""
    if not os.path.exists(path):
        return
    records = [r for r in read_metrics(path) if keep(r)]
    with open(path, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
