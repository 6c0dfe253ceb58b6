"""Orbax checkpoint round trip, keep-last-k, damaged checkpoints, and the NaN/inf guard."""

import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cliffjax.training.checkpoint import Checkpointer, NoIntactCheckpoint
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


def _largest_array_file(step_dir):
    files = glob.glob(os.path.join(step_dir, "state", "**", "d", "*"), recursive=True)
    return max(files, key=os.path.getsize)


def _garble(path):
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: orbax alone restores it as a wrong number
    open(path, "wb").write(bytes(data))


def _truncate(path):
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) // 2)


@pytest.mark.parametrize("damage", [_garble, _truncate, os.remove])
def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, damage):
    ckpt = Checkpointer(str(tmp_path / "ck"), keep=5)
    states = {n: _state(n) for n in (1, 2, 3)}
    for n, st in states.items():
        ckpt.save(n, st, st.params, {"phase": "rl", "step": n})
    bad = _largest_array_file(ckpt.path(3))
    damage(bad)
    warnings = []
    template = _state(7)
    number, restored, _, meta = ckpt.restore_latest_intact(
        lambda meta: (template, template.params), warnings.append
    )
    assert (number, meta["step"]) == (2, 2)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(states[2])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert len(warnings) == 1 and "\n" not in warnings[0]
    rel = os.path.relpath(bad, ckpt.path(3))
    assert warnings[0].startswith(f"checkpoint 3 is damaged ({rel} ")
    assert warnings[0].endswith("; falling back to checkpoint 2")
    # moved aside, so the number can be saved again by the resumed run
    assert ckpt.all_steps() == [1, 2]
    assert os.path.isdir(str(tmp_path / "ck.damaged" / "3"))
    ckpt.save(3, states[3], states[3].params, {"phase": "rl", "step": 3})
    assert ckpt.verify(3) is True
    ckpt.close()


def test_no_intact_checkpoint_raises_naming_the_ones_tried(tmp_path):
    ckpt = Checkpointer(str(tmp_path / "ck"), keep=5)
    for n in (1, 2):
        st = _state(n)
        ckpt.save(n, st, st.params, {"phase": "rl", "step": n})
        _garble(_largest_array_file(ckpt.path(n)))
    warnings = []
    template = _state(7)
    with pytest.raises(NoIntactCheckpoint, match=r"no intact checkpoint in .* \(tried 2, 1\)"):
        ckpt.restore_latest_intact(lambda meta: (template, template.params), warnings.append)
    assert [w.split(" (")[0] for w in warnings] == [
        "checkpoint 2 is damaged",
        "checkpoint 1 is damaged",
    ]
    assert warnings[1].endswith("; no older checkpoint")
    ckpt.close()
