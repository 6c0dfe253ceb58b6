"""Orbax checkpoint round trip, keep-last-k, and the NaN/inf guard."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cliffjax.training.checkpoint import Checkpointer
from cliffjax.training.guards import NonFiniteError, check_finite
from cliffjax.training.metrics import MetricsWriter, read_metrics, truncate_metrics
from cliffjax.training.state import init_state


def _state(seed):
    params = {"w": jax.random.normal(jax.random.PRNGKey(seed), (3, 4)), "b": jnp.arange(4.0)}
    return init_state(params, optax.adam(1e-3), jax.random.PRNGKey(seed + 100))


def test_roundtrip_and_keep_last(tmp_path):
    ckpt = Checkpointer(str(tmp_path / "ck"), keep=2)
    states = {n: _state(n) for n in (1, 2, 3)}
    for n, st in states.items():
        ckpt.save(n, st, st.params, {"phase": "rl", "step": n, "info": {"x": 0.5}})
    assert ckpt.all_steps() == [2, 3]
    assert ckpt.latest_step() == 3
    assert ckpt.restore_meta(3) == {"phase": "rl", "step": 3, "info": {"x": 0.5}}
    template = _state(7)
    restored, ref, meta = ckpt.restore(2, template, template.params)
    assert meta["step"] == 2
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(states[2])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert a.dtype == b.dtype
    np.testing.assert_array_equal(np.asarray(ref["w"]), np.asarray(states[2].params["w"]))
    ckpt.close()


def test_guard_names_step_and_quantity():
    check_finite({"loss": 1.0, "grad_norm": 2.0}, "rl", 3, ("loss", "grad_norm", "absent"))
    with pytest.raises(NonFiniteError, match=r"grad_norm = inf at rl step 7") as e:
        check_finite({"loss": 1.0, "grad_norm": float("inf")}, "rl", 7, ("loss", "grad_norm"))
    assert (e.value.step, e.value.quantity) == (7, "grad_norm")
    with pytest.raises(NonFiniteError, match=r"loss = nan at sft step 2"):
        check_finite({"loss": float("nan")}, "sft", 2, ("loss",))


def test_metrics_writer_and_truncate(tmp_path):
    path = str(tmp_path / "m.jsonl")
    w = MetricsWriter(path)
    for s in (1, 2, 3):
        w.write("rl", s, {"loss": float(s), "x": float("nan")})
    w.close()
    recs = read_metrics(path)
    assert [r["step"] for r in recs] == [1, 2, 3] and recs[0]["x"] == "nan"
    truncate_metrics(path, lambda r: r["step"] <= 2)
    assert [r["step"] for r in read_metrics(path)] == [1, 2]
