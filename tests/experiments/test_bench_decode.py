"""Smoke test of the decode benchmark (JAX side only, two tiny points)."""

import math

import numpy as np
import pytest

from cliffjax.experiments import bench_decode


def test_loglog_slope_recovers_power():
    x = np.array([32, 64, 128, 256])
    assert math.isclose(bench_decode.loglog_slope(x, 3.0 * x**1.5), 1.5, rel_tol=1e-9)
    assert math.isnan(bench_decode.loglog_slope([32], [1.0]))


def test_decode_rows_and_table_without_hf():
    s = bench_decode.DecodeSettings(
        char_batch=2, char_tokens=(2, 4), modes=("greedy",), reps=1, hf=False
    )
    results, text = bench_decode.run(s, models=("char",))
    rows = results["char"]["rows"]
    assert [r["new_tokens"] for r in rows] == [2, 4]
    assert all(r["jax_s"] > 0 and r["compile_s"] > 0 and "hf_s" not in r for r in rows)
    assert math.isfinite(results["char"]["slopes"]["greedy"]["jax"])
    assert "log-log slope" in text and "char" in text and "load average" in text
    assert len(results["load_average"]["before"]) == 3


def test_settings_name_the_bad_field():
    with pytest.raises(ValueError, match="qwen_size"):
        bench_decode.DecodeSettings(qwen_size="7b")
    with pytest.raises(ValueError, match="qwen_batch"):
        bench_decode.DecodeSettings(qwen_batch=0)
    with pytest.raises(ValueError, match="modes"):
        bench_decode.DecodeSettings(modes=("beam",))


def test_qwen_120m_shape_is_the_update_benchmarks():
    from cliffjax.experiments import bench_update_hf

    assert bench_decode.QWEN_SIZES["120m"][:6] == bench_update_hf.SIZES["120m"]
    assert bench_decode.QWEN_SIZES["120m"][6]  # tied embeddings, as the update step's model
