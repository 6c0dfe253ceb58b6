"""Records (one dict per example) from JSONL or Parquet files, and deterministic splits."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def load_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a ``.jsonl`` (one JSON object per line; blank lines skipped) or
    ``.parquet`` file (needs ``pyarrow``: ``pip install 'cliffjax[data]'``).

    Raises ``FileNotFoundError`` naming the path, and ``ValueError`` naming the line of a line
    that is not a JSON object."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"dataset file {path} does not exist")
    if path.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq
        except ImportError as e:  # pragma: no cover - depends on the optional extra
            raise ImportError(f"reading {path} needs pyarrow: pip install 'cliffjax[data]'") from e
        return pq.read_table(path).to_pylist()
    if not path.endswith((".jsonl", ".json")):
        raise ValueError(f"dataset file {path}: expected a .jsonl or .parquet file")
    records = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise ValueError(f"{path}:{i}: expected a JSON object, got {type(rec).__name__}")
            records.append(rec)
    return records


def get_field(record: dict[str, Any], field: str, where: str = "record") -> Any:
    """``record[field]``, with ``a.b`` reading nested objects; a missing field raises
    ``KeyError`` naming it and the fields the record has."""
    value: Any = record
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            have = sorted(record) if isinstance(record, dict) else []
            raise KeyError(f"{where} has no field {field!r} (fields: {have})")
        value = value[part]
    return value


def split_records(
    records: Sequence[dict[str, Any]], n_eval: int, seed: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(train, eval)``: ``n_eval`` records drawn without replacement by ``seed`` for the
    eval split (in file order), the rest for training (in file order)."""
    n = len(records)
    if not 0 <= n_eval < n:
        raise ValueError(f"split_records: n_eval must be in [0, {n}), got {n_eval}")
    held = set(np.random.default_rng(seed).permutation(n)[:n_eval].tolist())
    train = [r for i, r in enumerate(records) if i not in held]
    evals = [r for i, r in enumerate(records) if i in held]
    return train, evals


def write_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> int:
    """Write records as JSONL (creating the parent directory); returns the number written."""
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n
