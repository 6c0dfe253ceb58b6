"""Smoke test of the Qwen2 update-step benchmark: both frameworks step the same checkpoint and
the table has the ratio."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")


def test_bench_update_hf_times_both_frameworks(tmp_path, capsys):
    from cliffjax.experiments.bench_update_hf import main

    out = tmp_path / "u.json"
    recs = main(
        [
            "--sizes",
            "tiny",
            "--batch",
            "2",
            "--prompt",
            "4",
            "--new",
            "4",
            "--reps",
            "1",
            "--out",
            str(out),
        ]
    )
    assert json.loads(out.read_text()) == json.loads(json.dumps(recs))
    (rec,) = recs
    assert rec["params"] == rec["torch_params"] > 0  # the same model on both sides
    assert rec["jax"]["median"] > 0 and rec["torch"]["median"] > 0 and rec["jax_over_torch"] > 0
    assert "jax/torch" in capsys.readouterr().out
