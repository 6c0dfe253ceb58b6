"""``python -m cliffjax.theory_checks``: table, JSON, markdown and figures."""

from __future__ import annotations

import json

from cliffjax.theory_checks.__main__ import main


def test_cli_writes_report_and_figures(tmp_path, capsys):
    rc = main(["--quick", "--only", "PC-4", "PC-5", "PC-9", "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "PC-4" in out and "tightness" in out and "3/3 pass" in out
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["all_pass"] is True
    assert [c["check_id"] for c in payload["checks"]] == ["PC-4", "PC-5", "PC-9"]
    assert payload["checks"][0]["measured"] == 1.0
    md = (tmp_path / "report.md").read_text()
    assert "| PC-5 |" in md and "policy_vs_perturbation.png" in md
    for name in ("policy_vs_perturbation", "lipschitz_vs_inv_alpha", "weight_cliff"):
        png = tmp_path / f"{name}.png"
        assert png.stat().st_size > 10_000
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_rejects_unknown_check(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["--only", "NOPE", "--out", str(tmp_path)])
