"""``bench_load`` on a tiny bfloat16 checkpoint: both loaders report the same parameter count
and sane memory numbers, in-process and through the measuring subprocess."""

from __future__ import annotations

import pytest

from cliffjax.experiments import bench_load

pytest.importorskip("torch")
pytest.importorskip("transformers")

TINY = dict(bench_load.QWEN25_05B, hidden_size=64, intermediate_size=128, num_hidden_layers=2)
TINY.update(num_attention_heads=4, vocab_size=512)


def test_loaders_agree_on_a_tiny_checkpoint(tmp_path):
    path = bench_load.build_checkpoint(str(tmp_path / "ckpt"), TINY)
    assert bench_load.build_checkpoint(path, TINY) == path  # cached: not rebuilt
    ours = bench_load._worker("cliffjax", "bfloat16", path)
    theirs = bench_load._worker("transformers", "float32", path)
    # d = 64, 4 query heads and 2 key-value heads of 16, tied embeddings, q/k/v biases
    attn = (64 * 64 + 64) + 2 * (64 * 32 + 32) + 64 * 64
    layer = attn + 3 * 64 * 128 + 2 * 64
    n = 512 * 64 + 2 * layer + 64
    assert ours["n_params"] == theirs["n_params"] == n
    for m in (ours, theirs):
        assert 0 < m["rss_before_mb"] <= m["peak_rss_mb"] <= m["peak_rss_touched_mb"]
        assert m["load_s"] > 0 and m["anon_after_mb"] > 0
    sub = bench_load.measure("cliffjax load_hf f32", path)
    assert sub["n_params"] == n and sub["peak_rss_mb"] > 0
