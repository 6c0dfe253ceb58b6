"""Run the checks, print the table, write JSON, a markdown report and the figures."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from cliffjax.theory_checks import maps
from cliffjax.theory_checks.cliff_checks import branch_perturbation, two_branch_mdp
from cliffjax.theory_checks.record import CheckRecord
from cliffjax.theory_checks.soft_checks import lipschitz_curve, weight_cliff_policy

ALPHAS_FIG = (0.01, 0.03, 0.1, 0.3)


def run_checks(
    checks: dict[str, Callable[..., CheckRecord]], size: str, seed: int
) -> tuple[list[CheckRecord], dict[str, float]]:
    """Run every check; returns the records and the wall time of each (seconds)."""
    records, times = [], {}
    for cid, fn in checks.items():
        t0 = time.perf_counter()
        records.append(fn(size=size, seed=seed))
        times[cid] = time.perf_counter() - t0
    return records, times


def _fmt(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x == 0:
        return "0"
    ax = abs(x)
    return f"{x:.6g}" if 1e-3 <= ax < 1e5 else f"{x:.3e}"


def format_table(records: Iterable[CheckRecord], times: dict[str, float] | None = None) -> str:
    """Fixed-width text table: id, claim (shortened), bound, relation, measured, tightness, verdict."""
    rows = [("id", "claim", "bound", "rel", "measured", "tightness", "verdict", "time_s")]
    for r in records:
        claim = r.claim if len(r.claim) <= 58 else r.claim[:55] + "..."
        t = "" if times is None else f"{times.get(r.check_id, 0.0):.1f}"
        rows.append(
            (
                r.check_id,
                claim,
                _fmt(r.bound),
                r.relation,
                _fmt(r.measured),
                _fmt(r.tightness),
                r.verdict,
                t,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(records: Iterable[CheckRecord]) -> str:
    out = [
        "| id | claim | citation | bound | rel | measured | tightness | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    def num(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.10g}"

    for r in records:
        out.append(
            f"| {r.check_id} | {esc(r.claim)} | {esc(r.citation)} | {num(r.bound)} | {r.relation} | "
            f"{num(r.measured)} | {num(r.tightness)} | **{r.verdict}** |"
        )
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


def fig_policy_vs_perturbation(path: Path) -> None:
    """pi(a1) as a function of a reward perturbation eps: bandit with two tied arms (left) and the
    tied two-branch MDP with gamma = 0.9 (right), for alpha = 0 (uniform tie rule) and alpha > 0."""
    import matplotlib.pyplot as plt

    eps = np.concatenate([-np.logspace(-1, -6, 45), [0.0], np.logspace(-6, -1, 45)])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    # bandit: r = (eps, -eps, -1)
    ax = axes[0]
    hard = [maps.hard_policy(np.array([e, -e, -1.0]), "uniform")[0] for e in eps]
    ax.plot(eps, hard, "k-", lw=2.5, drawstyle="steps-mid", label="alpha = 0 (uniform over ties)")
    for a in ALPHAS_FIG:
        ax.plot(
            eps,
            [maps.soft_policy(np.array([e, -e, -1.0]), a)[0] for e in eps],
            label=f"alpha = {a}",
        )
    ax.set(
        xlabel="reward perturbation eps  (r = (eps, -eps, -1))",
        ylabel="pi(a1)",
        title="Bandit: two tied arms (third arm 1 below)",
    )
    ax.set_xscale("symlog", linthresh=1e-6)
    # MDP
    ax = axes[1]
    gamma = 0.9
    mdp = two_branch_mdp(gamma, num_first=1)
    R0 = np.zeros((3, 2))
    hard = [
        maps.hard_policy(maps.hard_q(mdp, R0 + branch_perturbation(e, 1, 1.0)), "uniform")[0, 0]
        for e in eps
    ]
    ax.plot(eps, hard, "k-", lw=2.5, drawstyle="steps-mid", label="alpha = 0 (uniform over ties)")
    for a in ALPHAS_FIG:
        pi = [
            maps.soft_optimal_policy(mdp, R0 + branch_perturbation(e, 1, 1.0), a)[0, 0] for e in eps
        ]
        ax.plot(eps, pi, label=f"alpha = {a}")
    ax.set(
        xlabel="perturbation delta on each branch (gamma = 0.9)",
        ylabel="pi(a1 | s0)",
        title="MDP: tied two-branch root",
    )
    ax.set_xscale("symlog", linthresh=1e-6)
    ticks = [-1e-1, -1e-3, -1e-5, 0.0, 1e-5, 1e-3, 1e-1]
    for ax in axes:
        ax.set_xticks(ticks, ["-1e-1", "-1e-3", "-1e-5", "0", "1e-5", "1e-3", "1e-1"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle("The policy cliff (alpha = 0) and its entropy-regularized smoothing")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fig_lipschitz_vs_alpha(path: Path, gamma: float = 0.5) -> dict[str, list[float]]:
    """Measured Lipschitz constant of the soft-optimal policy map against 1/alpha, with the bound."""
    import matplotlib.pyplot as plt

    alphas = list(np.logspace(-2, 1, 13))
    curve = lipschitz_curve(alphas, gamma)
    inv = 1 / np.asarray(alphas)
    fig, ax = plt.subplots(figsize=(6.2, 4.6))
    ax.loglog(inv, curve["bound"], "k--", lw=2, label="bound 1/(2 alpha (1-gamma))  (Prop. 4.7)")
    ax.loglog(inv, curve["measured"], "o", ms=7, label="measured: tied two-branch MDP (worst case)")
    ax.loglog(
        inv, curve["random"], "s", ms=5, alpha=0.8, label="measured: random MDPs (10 per alpha)"
    )
    ax.set(
        xlabel="1 / alpha",
        ylabel="Lipschitz constant  TV / ||dR||_inf",
        title=f"Soft-optimal policy map, gamma = {gamma}",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return curve


def fig_weight_cliff(path: Path) -> None:
    """pi(refuse) against the weight w of the refusal reward: hard flip at w* = 1/3, soft sigmoids."""
    import matplotlib.pyplot as plt

    w = np.linspace(0, 1, 2001)
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    ax.plot(w, [weight_cliff_policy(x, 1.0, 0.5, 0)[0] for x in w], "k-", lw=2.5, label="alpha = 0")
    for a in (0.02, 0.05, 0.2):
        ax.plot(w, [weight_cliff_policy(x, 1.0, 0.5, a)[0] for x in w], label=f"alpha = {a}")
    ax.axvline(1 / 3, color="gray", ls=":", label="w* = m2/(m1+m2) = 1/3")
    ax.set(
        xlabel="weight w of R1 = (1, 0)  (R2 = (0, 0.5) has weight 1-w)",
        ylabel="pi(refuse)",
        title="Weight-crossing cliff (effective reward)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fig_clipping(path: Path, record: CheckRecord) -> None:
    """Entropy bias of each clip scheme relative to no clipping (CL-1), with 2 standard errors."""
    import matplotlib.pyplot as plt

    names = ["sym", "hi-only", "lo-only", "dapo"]
    means = [record.details[n][0] for n in names]
    ses = [record.details[n][1] for n in names]
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    colors = ["tab:red" if m < 0 else "tab:blue" for m in means]
    ax.bar(names, means, yerr=[2 * s for s in ses], color=colors, capsize=6)
    ax.axhline(0, color="k", lw=1)
    ax.set(
        ylabel="E[H after update] - E[H no clip]  (nats)",
        title="Clipping bias under random rewards (K=50, peaked policy)",
    )
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def write_report(
    records: list[CheckRecord],
    times: dict[str, float],
    out_dir: Path,
    command: str,
    size: str,
    seed: int,
    make_figures: bool = True,
) -> dict[str, Path]:
    """Write ``results.json``, ``report.md`` and PNG figures into ``out_dir``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "results.json", "markdown": out_dir / "report.md"}
    figures = {}
    if make_figures:
        figures["policy_vs_perturbation"] = out_dir / "policy_vs_perturbation.png"
        fig_policy_vs_perturbation(figures["policy_vs_perturbation"])
        figures["lipschitz_vs_inv_alpha"] = out_dir / "lipschitz_vs_inv_alpha.png"
        fig_lipschitz_vs_alpha(figures["lipschitz_vs_inv_alpha"])
        figures["weight_cliff"] = out_dir / "weight_cliff.png"
        fig_weight_cliff(figures["weight_cliff"])
        cl = [r for r in records if r.check_id == "CL-1"]
        if cl:
            figures["clipping_entropy"] = out_dir / "clipping_entropy.png"
            fig_clipping(figures["clipping_entropy"], cl[0])
    paths.update(figures)
    payload = {
        "command": command,
        "size": size,
        "seed": seed,
        "all_pass": all(r.passed for r in records),
        "total_time_s": sum(times.values()),
        "checks": [dict(r.to_dict(), time_s=times.get(r.check_id)) for r in records],
    }
    paths["json"].write_text(json.dumps(payload, indent=2))
    md = [
        "# cliffjax theory checks",
        "",
        f"Command: `{command}` (size={size}, seed={seed}); total check time "
        f"{sum(times.values()):.1f} s. All pass: **{payload['all_pass']}**.",
        "",
        "`rel` says how measured must compare to bound; tightness = how close the worst case "
        "found comes to the bound (1 = attained; n/a for convergence and sign checks).",
        "",
        markdown_table(records),
        "",
        "## Notes per check",
        "",
    ]
    for r in records:
        md += [
            f"**{r.check_id}** ({r.citation}; sizes {json.dumps(r.sizes)}; seed {r.seed}). {r.notes}",
            "",
        ]
    if figures:
        md += ["## Figures", ""]
        for name, p in figures.items():
            md += [f"### {name}", "", f"![{name}]({p.name})", ""]
    paths["markdown"].write_text("\n".join(md))
    return paths
