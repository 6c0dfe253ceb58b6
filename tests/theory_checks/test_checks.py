"""Every theory check at small size: the verdict AND the numbers behind it.

A check that reports "fail" fails its test; the per-check assertions pin the measured values
against the bounds (exact jumps to 1e-12, tightness >= 0.999 where the bound is claimed tight).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cliffjax.theory_checks import ALL_CHECKS, maps
from cliffjax.theory_checks.record import CheckRecord


def _close(x: float, y: float, tol: float) -> bool:
    return abs(x - y) <= tol


def _tight(r: CheckRecord, lo: float = 0.999) -> bool:
    return lo <= r.tightness <= 1 + 1e-9


EXPECT = {
    "PC-1": lambda r: _tight(r, 1 - 1e-9) and r.measured <= r.bound * (1 + 1e-9),
    "PC-2": lambda r: (
        _close(r.measured / r.bound, 1, 1e-9)
        and r.details["violations"] == 0
        and r.details["strict_shrinks"] > 0
    ),
    "PC-3": lambda r: (
        _close(r.measured / r.bound, 1, 1e-9) and r.details["flips_below_radius"] == 0
    ),
    "PC-4": lambda r: _close(r.measured, 1.0, 1e-12) and r.details["max_dR_over_eps"] <= 1.9,
    "PC-5": lambda r: _close(r.measured, 0.75, 1e-12),
    "PC-6": lambda r: _close(r.measured, 0.1, 1e-12) and r.details["violations"] == 0,
    "PC-7": lambda r: _close(r.measured, 0.5, 1e-12) and r.details["norm_ratio"] <= 1,
    "PC-8": lambda r: _tight(r, 1 - 1e-9),
    "PC-9": lambda r: _close(r.measured, 2 / 3, 1e-12) and r.details["tv_weight"] == [1.0] * 3,
    "PC-10": lambda r: _tight(r),
    "PC-11": lambda r: _tight(r) and all(_close(t, 0.5, 1e-12) for t in r.details["hard_tv"]),
    "PC-11T": lambda r: _tight(r),
    "PC-12": lambda r: (
        r.measured <= r.bound
        and 0.45 < r.tightness < 0.55
        and np.all(np.diff(list(r.details["ratio_by_K"].values())) > 0)
    ),
    "PC-H": lambda r: _tight(r, 1 - 1e-6),
    "TR-1": lambda r: 0.99 <= r.measured <= 1 + 1e-6 and r.details["tv_to_softmax"] < 1e-8,
    "CR-1": lambda r: r.measured < 1e-6,
    "CR-2": lambda r: r.measured == 0,
    "LD-1": lambda r: r.measured < 1e-10,
    "LD-2": lambda r: r.measured == 1.0 and r.details["catastrophic"] > 0,
    "LD-3": lambda r: r.measured > 0.5,
    "RPO-1": lambda r: _close(r.tightness, 1.0, 1e-6),
    "CL-1": lambda r: r.measured < 0 and r.details["hi-only"][0] < 0 < r.details["lo-only"][0],
}


def test_every_check_has_expectations():
    assert set(EXPECT) == set(ALL_CHECKS)


@pytest.mark.parametrize("check_id", list(ALL_CHECKS))
def test_check_small(check_id):
    record = ALL_CHECKS[check_id](size="small", seed=0)
    assert record.check_id == check_id
    assert record.verdict == "pass", record.notes
    assert EXPECT[check_id](record), record.to_dict()
    json.dumps(record.to_dict())  # JSON-serialisable


def test_checks_are_deterministic():
    a = ALL_CHECKS["PC-2"](size="small", seed=3)
    b = ALL_CHECKS["PC-2"](size="small", seed=3)
    assert a.to_dict() == b.to_dict()


def test_broken_map_makes_a_check_fail(monkeypatch):
    """A bug in the exact maps (Q* off by 5%) must turn PC-1 into a failure."""
    real = maps.hard_q
    monkeypatch.setattr(maps, "hard_q", lambda mdp, R, **kw: 1.05 * real(mdp, R, **kw))
    assert ALL_CHECKS["PC-1"](size="small", seed=0).verdict == "fail"


def test_broken_softmax_makes_cliff_checks_fail(monkeypatch):
    """Uniform-over-ties replaced by first-index: PC-5's (m-1)/m jump must no longer hold."""
    real = maps.hard_policy
    monkeypatch.setattr(
        maps, "hard_policy", lambda q, tie_rule="uniform", **kw: real(q, "first", **kw)
    )
    assert ALL_CHECKS["PC-5"](size="small", seed=0).verdict == "fail"


def test_record_validation():
    kw = dict(check_id="X", claim="c", citation="p", sizes={}, seed=0, bound=1.0, measured=1.0)
    with pytest.raises(ValueError, match="relation"):
        CheckRecord(**kw, relation="<", tightness=1.0, verdict="pass")
    with pytest.raises(ValueError, match="verdict"):
        CheckRecord(**kw, relation="<=", tightness=1.0, verdict="ok")
    with pytest.raises(ValueError, match="tightness"):
        CheckRecord(**kw, relation="<=", tightness=math.nan, verdict="pass")
