"""Gather a policy-cliff multirun directory into one CSV, a table, plots and a markdown report.

Usage::

    python -m cliffjax.experiments.report <multirun dir> [--out <dir>]

Every job of ``cliffjax.experiments.policy_cliff`` writes, in its Hydra job directory,

* ``results.jsonl``: one row per (seed, ε) run with the job's settings (``objective``,
  ``entropy_coef``, ``kl_beta``, ``perturbation``, ...) and the measured distances
  (``tv_exact``, ``kl_exact``, ``tv_sampled``, ``kl_sampled``), rewards and sensitivities;
* ``summary.json``: job-level facts (seed noise floor, wall and compile times, overrides).

Text jobs (``task=jsonl``, ``cliffjax.experiments.policy_cliff_text``) write ``samples.json``
instead: the report pairs every run with the ε = 0 run of the same seed — in the same job or
in another one (one job per ε or seed) — and writes the sampled-answer distances with
bootstrap intervals and the noise floor (``sampled_results.csv`` and a section of
``report.md``).

This module walks the directory, joins both into ``results.csv`` (one row per run, job facts
prefixed ``job_``), aggregates over seeds and writes ``table.md``, ``distance_vs_eps.png``,
``sensitivity_vs_entropy.png`` and ``report.md`` next to them (default: the multirun
directory itself).

Intervals: for a cell with ``n`` seeds and values ``x_1..x_n`` the report gives the mean and the
two-sided 95% Student-t interval ``mean ± t_{0.975, n-1} · s / sqrt(n)`` with ``s`` the
Bessel-corrected standard deviation (``n = 1`` gives no interval, shown as ``nan``). Seeds share
the initialization and differ in rollout randomness, so the interval measures run-to-run noise
of training at fixed ε.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from scipy import stats

#: Columns that identify one cell of the table (one configuration at one ε).
GROUP_KEYS: Final = ("objective", "entropy_coef", "kl_beta", "perturbation", "eps")
#: Metrics aggregated over seeds in the printed table, with their column titles.
TABLE_METRICS: Final = (
    ("tv_exact", "TV exact"),
    ("kl_exact", "KL exact"),
    ("tv_sampled", "TV sampled"),
    ("tv_train", "TV train"),
    ("delta_gain_train", "ΔE_π δ train"),
    ("reward_delta", "Δreward"),
    ("sens_tv", "TV/ε"),
)
#: Training diagnostics shown next to the distances (``train_<metric>`` columns of the rows:
#: means over each run's final steps), when the runs' objectives report them.
AUX_METRICS: Final = (
    ("train_reward_mean", "reward"),
    ("train_entropy", "entropy"),
    ("train_kl_ref", "KL ref"),
    ("train_clip_frac_low", "clip low"),
    ("train_clip_frac_high", "clip high"),
    ("train_ratio_min", "ratio min"),
    ("train_ratio_max", "ratio max"),
    ("train_capped_frac", "CISPO capped"),
    ("train_weight_mean", "weight mean"),
    ("train_hazard_mean", "MHPO hazard"),
    ("train_multiplier_mean", "MHPO multiplier"),
    ("train_frac_pos_up", "DISPO +↑"),
    ("train_frac_pos_down", "DISPO +↓"),
    ("train_frac_neg_up", "DISPO −↑"),
    ("train_frac_neg_down", "DISPO −↓"),
    ("train_seq_clip_frac", "GSPO seq clip"),
)
RESULTS_FILE: Final = "results.jsonl"
SENSITIVITY_FILE: Final = "sensitivity.jsonl"
SLOPE_METRICS: Final = ("tv_slope", "tv_slope_train", "delta_slope_train", "reward_slope")
SUMMARY_FILE: Final = "summary.json"


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, int]:
    """Mean and half-width of the two-sided Student-t interval over finite ``values``.

    ``half = t_{(1+level)/2, n-1} · s / sqrt(n)`` with ``s`` the sample std (ddof=1).
    Returns ``(mean, half, n)``; ``half`` is ``nan`` for ``n < 2`` and ``mean`` is ``nan``
    for ``n = 0``. Non-finite values (e.g. the undefined sensitivity at ε = 0) are dropped.
    """
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, n
    half = float(stats.t.ppf(0.5 + level / 2.0, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, half, n


def _job_files(root: Path) -> list[Path]:
    """Every ``results.jsonl`` below ``root``, in a stable (sorted) order."""
    return sorted(root.rglob(RESULTS_FILE))


def load_rows(root: str | Path) -> list[dict[str, Any]]:
    """Rows of every job below ``root``; job facts from ``summary.json`` are added as ``job_*``.

    Each row also gets ``job`` (the job directory relative to ``root``). Raises
    ``FileNotFoundError`` when ``root`` holds no ``results.jsonl``.
    """
    root = Path(root)
    files = _job_files(root)
    if not files:
        raise FileNotFoundError(f"no {RESULTS_FILE} found below {root}")
    rows: list[dict[str, Any]] = []
    for f in files:
        job_facts: dict[str, Any] = {}
        summary = f.parent / SUMMARY_FILE
        if summary.exists():
            for k, v in json.loads(summary.read_text()).items():
                if isinstance(v, (int, float, str, bool)) or v is None:
                    job_facts[f"job_{k}"] = v
        job = str(f.parent.relative_to(root)) or "."
        job_rows = [
            {"job": job, **json.loads(line), **job_facts}
            for line in f.read_text().splitlines()
            if line.strip()
        ]
        _add_paired_gain(job_rows)
        rows.extend(job_rows)
    return rows


def _add_paired_gain(rows: list[dict[str, Any]]) -> None:
    """``delta_gain_train`` = E_π δ of a run minus that of the ε = 0 run of the same seed.

    Paired over seeds (runs of a seed share every random number), so its interval is much
    tighter than the difference of the two means. Rows of one job only.
    """
    base = {
        (r.get("perturbation"), r.get("objective"), r.get("seed")): r.get("delta_mean_train")
        for r in rows
        if r.get("eps") == 0.0
    }
    for r in rows:
        b = base.get((r.get("perturbation"), r.get("objective"), r.get("seed")))
        if r.get("delta_mean_train") is not None and b is not None:
            r["delta_gain_train"] = r["delta_mean_train"] - b


def load_sensitivity(root: str | Path) -> list[dict[str, Any]]:
    """Rows of every ``sensitivity.jsonl`` below ``root`` (empty if there are none)."""
    root = Path(root)
    rows = []
    for f in sorted(root.rglob(SENSITIVITY_FILE)):
        job = str(f.parent.relative_to(root)) or "."
        rows += [{"job": job, **json.loads(x)} for x in f.read_text().splitlines() if x.strip()]
    return rows


def format_slope_table(srows: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]]) -> str:
    """Markdown: forward-mode slopes per configuration (mean ± 95% over seeds), next to the
    finite-difference TV/ε at the smallest ε > 0 of the same configuration and the
    soft-optimal Lipschitz bound."""
    keys = ("objective", "entropy_coef", "kl_beta", "perturbation")
    cells = summarize(srows, metrics=SLOPE_METRICS, keys=(*keys, "derivative"))
    fd: dict[tuple[Any, ...], tuple[float, float]] = {}
    for c in summary:
        e = _as_float(c["eps"])
        k = tuple(c[x] for x in keys)
        if e > 0 and (k not in fd or e < fd[k][0]):
            fd[k] = (e, _as_float(c.get("tv_exact")) / e)
    head = "| objective | entropy | KL β | perturbation | derivative | n | dTV/dε held-out | dTV/dε train | dE_π δ/dε train | FD TV/ε (ε) | bound ‖δ‖∞/2α |"
    lines = [head, "|" + "---|" * 11]
    bounds = {tuple(r[x] for x in keys): r.get("lipschitz_bound") for r in srows}
    for c in cells:
        k = tuple(c[x] for x in keys)
        e, ratio = fd.get(k, (math.nan, math.nan))
        b = bounds.get(k)
        lines.append(
            f"| {c['objective']} | {_as_float(c['entropy_coef']):g} | {_as_float(c['kl_beta']):g} | "
            f"{c['perturbation']} | {c['derivative']} | {c['n']} | "
            + " | ".join(_fmt(c[m], c[f"{m}_ci"]) for m in SLOPE_METRICS[:3])
            + f" | {ratio:.4g} ({e:g}) | {'–' if b is None else f'{_as_float(b):.4g}'} |"
        )
    return "\n".join(lines)


def plot_slope_vs_fd(
    srows: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]], path: str | Path
) -> Path:
    """PNG: per configuration, measured TV(ε) (points, 95% bars) and the forward-mode slope
    line ``slope · ε`` at small ε (log-log axes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ("objective", "entropy_coef", "kl_beta", "perturbation")
    slopes = {
        k: float(np.mean([r["tv_slope"] for r in srows if tuple(r[x] for x in keys) == k]))
        for k in {tuple(r[x] for x in keys) for r in srows}
    }
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (k, slope) in enumerate(sorted(slopes.items(), key=str)):
        pts = sorted(
            (c for c in summary if tuple(c[x] for x in keys) == k and _as_float(c["eps"]) > 0),
            key=lambda c: _as_float(c["eps"]),
        )
        label = _config_label(dict(zip(keys, k)))
        color = f"C{i % 10}"
        if pts:
            eps = np.array([_as_float(c["eps"]) for c in pts])
            tv = np.array([c["tv_exact"] for c in pts])
            err = np.nan_to_num(np.array([c["tv_exact_ci"] for c in pts]))
            ax.errorbar(eps, tv, yerr=err, fmt="o", color=color, label=f"{label}: TV(ε)")
            grid = np.geomspace(eps.min() / 3, eps.max(), 30)
            ax.plot(
                grid,
                np.minimum(slope * grid, 1.0),
                "-",
                color=color,
                alpha=0.7,
                label=f"{label}: slope·ε, slope {slope:.3g}",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("ε")
    ax.set_ylabel("TV(π_ε, π_0), held-out prompts")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax.set_title("Derivative (forward-mode AD) vs finite differences")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write ``rows`` as CSV with the union of their keys as header (first-seen order)."""
    header: list[str] = []
    for r in rows:
        header.extend(k for k in r if k not in header)
    path = Path(path)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header, restval="")
        w.writeheader()
        w.writerows(rows)
    return path


def _as_float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def summarize(
    rows: Iterable[dict[str, Any]],
    metrics: Sequence[str] = tuple(m for m, _ in TABLE_METRICS),
    keys: Sequence[str] = GROUP_KEYS,
    level: float = 0.95,
) -> list[dict[str, Any]]:
    """Aggregate runs over seeds: one dict per distinct ``keys`` tuple, sorted by the keys.

    Each output has the key columns, ``n`` (runs in the cell), and for every metric ``m``:
    ``m`` (mean), ``m_ci`` (interval half-width, see :func:`mean_ci`), ``m_n`` (finite values).
    Cells also carry ``noise_floor_tv`` (``noise_floor_tv_train``): the mean of the jobs'
    ``job_noise_floor_tv`` (mean pairwise TV between seeds at ε = 0 on held-out prompts; on
    training prompts) when present.
    """
    cells: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        cells.setdefault(tuple(r.get(k) for k in keys), []).append(r)

    def sort_key(item: tuple[tuple[Any, ...], list[dict[str, Any]]]) -> tuple[Any, ...]:
        return tuple((0, v) if isinstance(v, (int, float)) else (1, str(v)) for v in item[0])

    out = []
    for key, members in sorted(cells.items(), key=sort_key):
        cell: dict[str, Any] = dict(zip(keys, key))
        cell["n"] = len(members)
        for m in metrics:
            mean, half, n = mean_ci([_as_float(r.get(m)) for r in members], level)
            cell[m], cell[f"{m}_ci"], cell[f"{m}_n"] = mean, half, n
        for name in ("noise_floor_tv", "noise_floor_tv_train"):
            floors = [_as_float(r.get(f"job_{name}")) for r in members]
            floors = [f for f in floors if math.isfinite(f)]
            cell[name] = float(np.mean(floors)) if floors else math.nan
        out.append(cell)
    return out


def _fmt(mean: float, half: float) -> str:
    if not math.isfinite(mean):
        return "–"
    if not math.isfinite(half):
        return f"{mean:.4g}"
    if half < 1e-12 * max(1.0, abs(mean)):  # equal values across seeds: float residue only
        half = 0.0
    return f"{mean:.4g} ± {half:.2g}"


def format_table(summary: Sequence[dict[str, Any]]) -> str:
    """Markdown table: objective × regularization × perturbation × ε → mean ± 95% half-width."""
    head = ["objective", "entropy", "KL β", "perturbation", "ε", "n"]
    head += [title for _, title in TABLE_METRICS] + ["seed floor TV"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in summary:
        cols = [
            str(c["objective"]),
            f"{_as_float(c['entropy_coef']):g}",
            f"{_as_float(c['kl_beta']):g}",
            str(c["perturbation"]),
            f"{_as_float(c['eps']):g}",
            str(c["n"]),
        ]
        cols += [_fmt(c[m], c[f"{m}_ci"]) for m, _ in TABLE_METRICS]
        cols.append(_fmt(c["noise_floor_tv"], math.nan))
        lines.append("| " + " | ".join(cols) + " |")
    return "\n".join(lines)


def format_aux_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of the objectives' training diagnostics per cell (mean ± 95% interval
    over seeds), with the columns of :data:`AUX_METRICS` that some run reports."""
    present = [(m, t) for m, t in AUX_METRICS if any(r.get(m) not in (None, "") for r in rows)]
    if not present:
        return "(the runs record no training diagnostics)"
    summary = summarize(rows, metrics=[m for m, _ in present])
    head = ["objective", "entropy", "KL β", "perturbation", "ε"] + [t for _, t in present]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in summary:
        cols = [
            str(c["objective"]),
            f"{_as_float(c['entropy_coef']):g}",
            f"{_as_float(c['kl_beta']):g}",
            str(c["perturbation"]),
            f"{_as_float(c['eps']):g}",
        ]
        cols += [_fmt(c[m], c[f"{m}_ci"]) for m, _ in present]
        lines.append("| " + " | ".join(cols) + " |")
    return "\n".join(lines)


def _config_label(c: dict[str, Any]) -> str:
    label = f"{c['objective']} ent={_as_float(c['entropy_coef']):g}"
    if _as_float(c["kl_beta"]) > 0:
        label += f" β={_as_float(c['kl_beta']):g}"
    return label


def cliff_index(
    summary: Sequence[dict[str, Any]], metric: str = "tv_exact"
) -> list[dict[str, Any]]:
    """Per configuration: the distance ``metric`` at the smallest and largest ε > 0.

    A Lipschitz map keeps TV/ε bounded as ε → 0 (TV shrinks with ε); a cliff keeps TV away
    from 0 (above the seed noise floor) as ε → 0, so TV/ε grows like 1/ε. The ratio
    ``tv_small / tv_large`` is near ``ε_small / ε_large`` for a linear response and near 1 for
    a jump.
    """
    by_cfg: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for c in summary:
        if _as_float(c["eps"]) > 0:
            key = tuple(c[k] for k in GROUP_KEYS if k != "eps")
            by_cfg.setdefault(key, []).append(c)
    out = []
    for members in by_cfg.values():
        if len(members) < 2:  # one ε > 0 says nothing about the shape of the response
            continue
        members = sorted(members, key=lambda c: _as_float(c["eps"]))
        lo, hi = members[0], members[-1]
        out.append(
            {
                "label": _config_label(lo),
                "perturbation": lo["perturbation"],
                "eps_small": _as_float(lo["eps"]),
                "eps_large": _as_float(hi["eps"]),
                "tv_small": lo.get(metric, math.nan),
                "tv_large": hi.get(metric, math.nan),
                "tv_ratio": lo.get(metric, math.nan) / hi[metric] if hi.get(metric) else math.nan,
                "eps_ratio": _as_float(lo["eps"]) / _as_float(hi["eps"]),
                "noise_floor_tv": lo.get(
                    "noise_floor_tv_train" if metric == "tv_train" else "noise_floor_tv", math.nan
                ),
            }
        )
    return out


def format_cliff_index(index: Sequence[dict[str, Any]]) -> str:
    """Markdown table of :func:`cliff_index`."""
    head = "| configuration | perturbation | TV(ε_min) | TV(ε_max) | TV ratio | ε ratio | seed floor TV |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in index:
        lines.append(
            f"| {r['label']} | {r['perturbation']} | {r['tv_small']:.4g} (ε={r['eps_small']:g}) | "
            f"{r['tv_large']:.4g} (ε={r['eps_large']:g}) | {r['tv_ratio']:.3g} | "
            f"{r['eps_ratio']:.3g} | {r['noise_floor_tv']:.4g} |"
        )
    return "\n".join(lines)


#: Distances drawn against ε: held-out prompts (the table's main column) and training prompts.
PLOT_DISTANCES: Final = (
    ("tv_exact", "TV(π_ε, π_0), held-out prompts"),
    ("tv_train", "TV(π_ε, π_0), training prompts"),
)


def plot_distance_vs_eps(summary: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """PNG: exact TV vs ε, one line per (objective, regularization).

    One column per perturbation; one row per distance of :data:`PLOT_DISTANCES` that the runs
    report (held-out prompts, training prompts). Error bars: 95% intervals over seeds.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    perts = sorted({str(c["perturbation"]) for c in summary})
    metrics = [(m, t) for m, t in PLOT_DISTANCES if any(c.get(f"{m}_n") for c in summary)]
    metrics = metrics or [PLOT_DISTANCES[0]]
    fig, axes = plt.subplots(
        len(metrics), len(perts), figsize=(5.5 * len(perts), 3.8 * len(metrics)), squeeze=False
    )
    eps_pos = sorted({_as_float(c["eps"]) for c in summary if _as_float(c["eps"]) > 0})
    for row, (metric, title) in enumerate(metrics):
        for ax, pert in zip(axes[row], perts):
            lines: dict[str, list[dict[str, Any]]] = {}
            for c in summary:
                if str(c["perturbation"]) == pert:
                    lines.setdefault(_config_label(c), []).append(c)
            for label, cs in sorted(lines.items()):
                cs = sorted(cs, key=lambda c: _as_float(c["eps"]))
                x = np.array([_as_float(c["eps"]) for c in cs])
                y = np.array([c.get(metric, math.nan) for c in cs], dtype=float)
                e = np.nan_to_num(
                    np.array([c.get(f"{metric}_ci", math.nan) for c in cs], dtype=float)
                )
                ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=label)
            if eps_pos:
                ax.set_xscale("symlog", linthresh=eps_pos[0])
            ax.set_xlabel("ε (reward perturbation size)")
            ax.set_ylabel(title)
            ax.set_title(f"perturbation: {pert}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_sensitivity_vs_entropy(summary: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """PNG: TV/ε vs entropy coefficient, one line per (objective, KL β, ε), one panel per δ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    perts = sorted({str(c["perturbation"]) for c in summary})
    fig, axes = plt.subplots(1, len(perts), figsize=(5.5 * len(perts), 4), squeeze=False)
    for ax, pert in zip(axes[0], perts):
        lines: dict[str, list[dict[str, Any]]] = {}
        for c in summary:
            if str(c["perturbation"]) == pert and _as_float(c["eps"]) > 0:
                label = f"{c['objective']} β={_as_float(c['kl_beta']):g} ε={_as_float(c['eps']):g}"
                lines.setdefault(label, []).append(c)
        for label, cs in sorted(lines.items()):
            cs = sorted(cs, key=lambda c: _as_float(c["entropy_coef"]))
            x = np.array([_as_float(c["entropy_coef"]) for c in cs])
            y = np.array([c["sens_tv"] for c in cs])
            e = np.nan_to_num(np.array([c["sens_tv_ci"] for c in cs]))
            ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=label)
        ents = sorted(
            {_as_float(c["entropy_coef"]) for c in summary if _as_float(c["entropy_coef"]) > 0}
        )
        if ents:
            ax.set_xscale("symlog", linthresh=ents[0])
        ax.set_yscale("log")
        ax.set_xlabel("entropy coefficient")
        ax.set_ylabel("sensitivity TV/ε")
        ax.set_title(f"perturbation: {pert}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _jobs_table(rows: Sequence[dict[str, Any]]) -> str:
    jobs: dict[str, dict[str, Any]] = {}
    for r in rows:
        jobs.setdefault(r["job"], r)
    lines = [
        "| job | overrides | runs | wall s | warm start s | compile s | train s | eval s | seed floor TV |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for job, r in sorted(jobs.items()):
        n = sum(1 for x in rows if x["job"] == job)
        t = [
            _as_float(r.get(f"job_{k}"))
            for k in ("wall_s", "sft_s", "compile_s", "train_s", "eval_s")
        ]
        lines.append(
            f"| {job} | `{r.get('job_overrides', '')}` | {n} | "
            + " | ".join(f"{x:.1f}" for x in t)
            + f" | {_as_float(r.get('job_noise_floor_tv')):.4g} |"
        )
    return "\n".join(lines)


SAMPLED_INTRO: Final = """These are **sampled-answer distances**, not sequence-level ones. For every run and
for the ε = 0 run of the same seed, `{n}` completions (temperature 1) per held-out prompt were
sampled from the final policy and reduced to their extracted final answer (extractor
`{extractor}`; an unparsable completion is the one outcome "none") and to a length bin.
"TV answers" is ½ Σ_a |p̂_ε(a|x) − p̂_0(a|x)| between those empirical distributions, averaged
over held-out prompts; "TV length bins" the same on completion-length bins. Brackets: 95%
percentile bootstrap intervals over prompts.

Read it with two caveats (docs/sweeps.md, "Sampled-answer distances"): a distance on a
coarsening of the text is a **lower bound** of the sequence-level TV (policies with equal
answer distributions may still differ in their reasoning traces), and the empirical TV is
**biased upward** by finite n. The "noise floor" is the same statistic between two
independent sample sets of the ε = 0 policy, so a run moved only if its TV clears the floor:
"excess over floor" is the paired per-prompt difference. The floor depends on the policy's
own spread, so the excess can be negative (a sharper policy has a lower floor) and is only a
rough guide; "‖Δ‖₂² answers" is the unbiased estimate of Σ_a (p_ε(a|x) − p_0(a|x))², whose
mean is exactly 0 when the answer distributions agree — its interval excluding 0 is the
evidence of a move (and TV ≥ ½‖Δ‖₂). The row at ε = 0 compares the two sample sets of the
ε = 0 policy: it is the floor, and its ‖Δ‖₂² should cover 0."""


def sampled_summary(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (objective, perturbation, ε): means over seeds of the sampled-answer metrics with
    Student-t half-widths over seeds (:func:`mean_ci`)."""
    metrics = (
        "tv_answer",
        "floor_answer",
        "excess_answer",
        "l2sq_answer",
        "tv_length",
        "d_correct",
    )
    return summarize(rows, metrics, ("objective", "perturbation", "eps"))


def format_sampled_summary(summary: Sequence[dict[str, Any]]) -> str:
    """Markdown: the per-ε means over seeds of :func:`sampled_summary`."""
    lines = [
        "| objective | perturbation | ε | seeds | TV answers | noise floor | excess | ‖Δ‖₂² "
        "answers | TV length bins | Δ accuracy |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in summary:
        cells = [
            _fmt(c[m], c[f"{m}_ci"])
            for m in (
                "tv_answer",
                "floor_answer",
                "excess_answer",
                "l2sq_answer",
                "tv_length",
                "d_correct",
            )
        ]
        lines.append(
            f"| {c['objective']} | {c['perturbation']} | {c['eps']:g} | {c['n']} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def _sampled_jobs_table(root: Path) -> str:
    lines = [
        "| job | overrides | runs | mode | wall s | warm start s | train s | sampling s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in sorted(root.rglob(SUMMARY_FILE)):
        s = json.loads(f.read_text())
        if s.get("mode") != "text":
            continue
        job = str(f.parent.relative_to(root)) or "."
        t = [_as_float(s.get(k)) for k in ("wall_s", "sft_s", "train_s", "eval_s")]
        lines.append(
            f"| {job} | `{s.get('overrides', '')}` | {s.get('n_runs')} | {s.get('runs')} | "
            + " | ".join(f"{x:.1f}" for x in t)
            + " |"
        )
    return "\n".join(lines)


def sampled_section(root: Path, out_dir: Path) -> tuple[str, str] | None:
    """For the text jobs below ``root`` (``samples.json``): pair every run with the ε = 0 run
    of its seed (across jobs), write ``sampled_results.csv``; return ``(table, section)`` in
    markdown, or ``None`` when there are no text jobs."""
    from cliffjax.experiments.policy_cliff_text import (
        format_sampled_rows,
        load_sample_sets,
        sampled_rows,
    )

    sets = load_sample_sets(root)
    if not sets:
        return None
    rows = sampled_rows(sets)
    write_csv(rows, out_dir / "sampled_results.csv")
    table = format_sampled_rows(rows)
    n = sorted({r["n_samples"] for r in rows}) if rows else []
    extractor = sorted({r.get("extractor", "") for r in rows})
    unpaired = sum(1 for s in sets if s["set"] == "a") - len(rows)
    intro = SAMPLED_INTRO.format(n=", ".join(map(str, n)), extractor=", ".join(extractor))
    section = f"""## Sampled-answer distances (text tasks)

{intro}

Per-ε means over seeds (± 95% Student-t half-width over seeds):

{format_sampled_summary(sampled_summary(rows))}

Per run (job × seed × ε){f"; {unpaired} run(s) without an ε = 0 run of their seed are left out" if unpaired else ""}:

{table}

Full per-run data: `sampled_results.csv`.

### Jobs

{_sampled_jobs_table(root)}
"""
    return table, section


def write_report(root: str | Path, out: str | Path | None = None) -> Path:
    """Write ``results.csv``, ``table.md``, the two PNGs and ``report.md``; return the report path.

    Text jobs (``samples.json``) get the sampled-answer section (:func:`sampled_section`); a
    directory of text jobs only gets that section alone (``table.md`` = its per-run table).
    """
    root = Path(root)
    out_dir = Path(out) if out is not None else root
    out_dir.mkdir(parents=True, exist_ok=True)
    sampled = sampled_section(root, out_dir)
    if sampled is not None and not _job_files(root):
        table, section = sampled
        (out_dir / "table.md").write_text(table + "\n")
        path = out_dir / "report.md"
        path.write_text(f"# Policy-cliff sweep: {root.name}\n\nSource: `{root}`.\n\n{section}")
        return path
    rows = load_rows(root)
    write_csv(rows, out_dir / "results.csv")
    summary = summarize(rows)
    table = format_table(summary)
    (out_dir / "table.md").write_text(table + "\n")
    index_md = format_cliff_index(cliff_index(summary))
    index_train_md = format_cliff_index(cliff_index(summary, "tv_train"))
    plot_distance_vs_eps(summary, out_dir / "distance_vs_eps.png")
    plot_sensitivity_vs_entropy(summary, out_dir / "sensitivity_vs_entropy.png")
    srows = load_sensitivity(root)
    slope_md = ""
    if srows:
        plot_slope_vs_fd(srows, summary, out_dir / "derivative_vs_fd.png")
        slope_md = f"""
## Derivative vs finite difference

Slopes of the reward→policy map at ε = 0 from forward-mode AD through training
(`cliffjax.experiments.sensitivity`; docs/sensitivity.md), mean ± 95% over seeds, next to the
finite-difference TV/ε at the smallest ε of the same configuration and, with an entropy bonus
α, the soft-optimal policy's bound ‖δ‖∞/(2α) (a bound for the regularized optimum, a
reference for the trained policy).

{format_slope_table(srows, summary)}

![derivative vs finite difference](derivative_vs_fd.png)
"""
    total_wall = sum(_as_float(r.get("job_wall_s")) for r in {r["job"]: r for r in rows}.values())
    report = f"""# Policy-cliff sweep: {root.name}

Source: `{root}` ({len({r["job"] for r in rows})} jobs, {len(rows)} runs; summed job wall time
{total_wall:.0f} s). Each run trains the same warm-started policy with the same rollout seeds
under the reward `r + ε·δ`; distances compare the final policy at ε with the ε = 0 run of the
same seed, on held-out prompts, at the sequence level (TV = ½ Σ_y |π_ε(y) − π_0(y)|, KL =
KL(π_ε ‖ π_0), averaged over prompts). "exact" enumerates every well-formed completion (the
rest is one lumped outcome); "sampled" estimates the full-sequence TV from completions of π_ε
scored under both policies; "TV train" is the exact TV on the training prompts, where δ acts;
"ΔE_π δ train" is the change, paired by seed, of the expected perturbation under the final
policy on the training prompts (for δ = ties: how much probability moved onto the tie-breaking
answers).
Cells: mean ± 95% Student-t half-width over seeds. "seed floor TV" is the
mean TV between different seeds at ε = 0 (run-to-run noise of training itself).

## Distances

{table}

## Cliff index (smallest vs largest ε > 0)

A Lipschitz response has TV ratio ≈ ε ratio; a cliff has TV ratio ≈ 1 (the distance does not
shrink with ε) and TV(ε_min) well above the seed floor.

Held-out prompts:

{index_md}

Training prompts:

{index_train_md}

## Objective diagnostics

What each objective did during training, next to how far its policy moved: means over the
last steps of every run (`train_*` columns of `results.csv`; clip fractions, ratio extremes,
CISPO/MHPO weights, MHPO hazard, DISPO regime fractions, entropy, KL to the warm start).
Cells: mean ± 95% half-width over seeds.

{format_aux_table(rows)}

{slope_md}
## Plots

![distance vs eps](distance_vs_eps.png)

![sensitivity vs entropy](sensitivity_vs_entropy.png)

## Jobs

{_jobs_table(rows)}

Full per-run data: `results.csv`.
"""
    if sampled is not None:
        report += "\n" + sampled[1]
    path = out_dir / "report.md"
    path.write_text(report)
    return path


class ReportCallback:
    """Hydra callback: after a multirun, write the report of its sweep dir and print its path.

    Enabled in ``conf/policy_cliff.yaml`` under ``hydra.callbacks``; it subclasses nothing so
    importing this module does not import Hydra.
    """

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        del config, kwargs

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        del kwargs
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            path = write_report(sweep_dir)
        except FileNotFoundError as err:  # every job failed: say so, do not mask the failure
            print(f"[report] {err}", file=sys.stderr)
            return
        print((sweep_dir / "table.md").read_text())
        print(f"[report] {path}")

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        del config, kwargs

    def on_run_end(self, config: Any, **kwargs: Any) -> None:
        del config, kwargs

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        del config, kwargs

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        del config, job_return, kwargs


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m cliffjax.experiments.report <multirun dir> [--out DIR]``; prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="a Hydra multirun directory (or any dir with results.jsonl)")
    parser.add_argument("--out", default=None, help="output directory (default: root)")
    args = parser.parse_args(argv)
    try:
        path = write_report(args.root, args.out)
    except FileNotFoundError as e:  # a wrong directory is a usage error: exit 2, one line
        parser.error(str(e))
    print((path.parent / "table.md").read_text())
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
