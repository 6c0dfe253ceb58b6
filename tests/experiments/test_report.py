"""The report on a small synthetic multirun directory gives the expected table."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from cliffjax.experiments import report

# Two jobs (grpo, mhpo), 3 seeds, ε ∈ {0, 0.1}. tv_exact is chosen so means and intervals are
# easy to check by hand: grpo at ε=0.1 has values 0.1, 0.2, 0.3 (mean 0.2, s = 0.1).
_VALUES = {
    ("grpo", 0.0): [0.0, 0.0, 0.0],
    ("grpo", 0.1): [0.1, 0.2, 0.3],
    ("mhpo", 0.0): [0.0, 0.0, 0.0],
    ("mhpo", 0.1): [0.05, 0.05, 0.05],
}


def _write_multirun(root: Path) -> None:
    for j, obj in enumerate(["grpo", "mhpo"]):
        job = root / str(j)
        job.mkdir(parents=True)
        lines = []
        for eps in (0.0, 0.1):
            for seed, tv in enumerate(_VALUES[(obj, eps)]):
                row = {
                    "objective": obj,
                    "entropy_coef": 0.01 * j,
                    "kl_beta": 0.0,
                    "perturbation": "ties",
                    "eps": eps,
                    "seed": seed,
                    "tv_exact": tv,
                    "kl_exact": 2 * tv,
                    "tv_sampled": tv,
                    "reward_delta": -tv,
                    "delta_mean_train": 0.3 + tv + 0.01 * seed,
                    "sens_tv": tv / eps if eps > 0 else None,
                    "train_entropy": 1.0 + seed,
                }
                if obj == "grpo":
                    row["train_clip_frac_high"] = 0.1 * seed
                else:
                    row["train_hazard_mean"] = 0.5
                lines.append(json.dumps(row))
        (job / "results.jsonl").write_text("\n".join(lines) + "\n")
        summary = {"noise_floor_tv": 0.01 * (j + 1), "wall_s": 10.0 + j, "train_s": 5.0}
        (job / "summary.json").write_text(json.dumps(summary))


def test_mean_ci_matches_student_t():
    mean, half, n = report.mean_ci([0.1, 0.2, 0.3])
    # t_{0.975, 2} = 4.302652729..., s = 0.1, n = 3.
    assert n == 3
    assert mean == pytest.approx(0.2)
    assert half == pytest.approx(4.302652729911275 * 0.1 / math.sqrt(3), rel=1e-9)
    assert math.isnan(report.mean_ci([1.0])[1])
    assert report.mean_ci([None, float("nan"), 2.0])[2] == 1


def test_report_on_synthetic_dir(tmp_path):
    _write_multirun(tmp_path)
    path = report.write_report(tmp_path)
    assert path == tmp_path / "report.md"
    for name in ("results.csv", "table.md", "distance_vs_eps.png", "sensitivity_vs_entropy.png"):
        assert (tmp_path / name).stat().st_size > 0, name

    with (tmp_path / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12
    assert {r["job_noise_floor_tv"] for r in rows} == {"0.01", "0.02"}

    summary = report.summarize(report.load_rows(tmp_path))
    cells = {(c["objective"], c["eps"]): c for c in summary}
    assert list(cells) == [("grpo", 0.0), ("grpo", 0.1), ("mhpo", 0.0), ("mhpo", 0.1)]
    g = cells[("grpo", 0.1)]
    assert g["n"] == 3
    assert g["tv_exact"] == pytest.approx(0.2)
    assert g["tv_exact_ci"] == pytest.approx(4.302652729911275 * 0.1 / math.sqrt(3))
    assert g["kl_exact"] == pytest.approx(0.4)
    assert g["sens_tv"] == pytest.approx(2.0)
    assert g["reward_delta"] == pytest.approx(-0.2)
    assert g["noise_floor_tv"] == pytest.approx(0.01)
    # Paired by seed: the seed offsets cancel, leaving tv (0.1, 0.2, 0.3).
    assert g["delta_gain_train"] == pytest.approx(0.2)
    assert g["delta_gain_train_ci"] == pytest.approx(g["tv_exact_ci"])
    m = cells[("mhpo", 0.1)]
    assert m["tv_exact"] == pytest.approx(0.05) and m["tv_exact_ci"] == pytest.approx(0.0)
    assert m["entropy_coef"] == pytest.approx(0.01)
    # The undefined sensitivity at ε = 0 is dropped, not averaged as 0.
    assert cells[("grpo", 0.0)]["sens_tv_n"] == 0

    table = (tmp_path / "table.md").read_text().splitlines()
    assert table[0].startswith("| objective | entropy | KL β | perturbation | ε | n |")
    assert "| grpo | 0 | 0 | ties | 0.1 | 3 | 0.2 ± 0.25 |" in table[3]
    assert "| mhpo | 0.01 | 0 | ties | 0.1 | 3 | 0.05 ± 0 |" in table[5]

    assert report.cliff_index(summary) == []  # a single ε > 0 per configuration: no index
    text = path.read_text()
    assert "distance_vs_eps.png" in text and "| 1 |" in text  # jobs table lists job "1"
    # the objectives' diagnostics sit next to the distances, each where it is reported
    aux = text.split("## Objective diagnostics")[1].split("## Plots")[0]
    head = next(line for line in aux.splitlines() if line.startswith("| objective"))
    assert head.endswith("| entropy | clip high | MHPO hazard |")
    grpo = next(line for line in aux.splitlines() if line.startswith("| grpo | 0 | 0 | ties | 0.1"))
    assert grpo.endswith("| 2 ± 2.5 | 0.1 ± 0.25 | – |")


def test_missing_dir_fails_clearly(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match=r"no results\.jsonl"):
        report.write_report(tmp_path)
    with pytest.raises(SystemExit) as e:  # the CLI: a usage error, exit 2 with one message
        report.main([str(tmp_path)])
    assert e.value.code == 2
    assert "no results.jsonl found below" in capsys.readouterr().err


def test_cli_prints_table(tmp_path, capsys):
    _write_multirun(tmp_path)
    assert report.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "| grpo |" in out and f"report: {tmp_path / 'out' / 'report.md'}" in out


def test_cliff_index_compares_smallest_and_largest_eps():
    base = {"objective": "grpo", "entropy_coef": 0.0, "kl_beta": 0.0, "perturbation": "ties"}
    summary = [
        {**base, "eps": 0.0, "tv_exact": 0.0, "noise_floor_tv": 0.01},
        {**base, "eps": 0.01, "tv_exact": 0.3, "noise_floor_tv": 0.01},
        {**base, "eps": 0.1, "tv_exact": 0.4, "noise_floor_tv": 0.01},
    ]
    (idx,) = report.cliff_index(summary)
    assert idx["tv_ratio"] == pytest.approx(0.75) and idx["eps_ratio"] == pytest.approx(0.1)
    assert idx["label"] == "grpo ent=0" and "| 0.75 | 0.1 |" in report.format_cliff_index([idx])
