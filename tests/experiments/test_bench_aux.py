"""Smoke test of the aux-metrics benchmark: both update-step variants run, give the same
update, and the table and JSON report the difference."""

from __future__ import annotations

import json

import pytest

from cliffjax.experiments.bench_aux import main


def test_bench_aux_times_both_variants_of_the_same_update(tmp_path, capsys):
    out = tmp_path / "aux.json"
    args = ["--objectives", "dispo", "--width", "32", "--batch", "4", "--prompt", "4"]
    recs = main([*args, "--new", "8", "--rounds", "1", "--reps", "1", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(recs))
    (rec,) = recs
    assert rec["same_update"] is True
    # the DISPO regime fractions are among the metrics the switch drops
    assert {"frac_pos_up", "frac_neg_down", "ratio_max"} <= set(rec["aux_metrics"])
    assert rec["step_aux"]["median"] > 0 and rec["step_no_aux"]["median"] > 0
    assert rec["T"] == 12 and rec["B"] == 4
    assert "same update" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--objectives", "dpo"], "not a policy objective"), (["--new", "0"], "--new")],
)
def test_bench_aux_rejects_bad_arguments(args, message, capsys):
    with pytest.raises(SystemExit):
        main(args)
    assert message in capsys.readouterr().err
