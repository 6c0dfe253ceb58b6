"""What the objectives' aux metrics cost inside the RL update step (``trainer.rl.aux_metrics``).

    python -m cliffjax.experiments.bench_aux                      # d=128, 64 seqs x (8 + 512)
    python -m cliffjax.experiments.bench_aux --objectives dispo --new 2048 --batch 16 --out a.json

Every policy objective returns aux metrics (ratio statistics, clip and regime fractions, KL)
that the trainer logs on every step; ``trainer.rl.aux_metrics=false`` skips them. Stand-alone,
at long sequence lengths, the aux reductions cost several times the loss itself (section 1 of
``make bench``); this script asks what they cost where they are used. For each objective the
update phase of ``make bench``'s section 2 (one optimizer step: forward, log-probs and entropy,
the objective, backward, clipping, Adam; ``bench.update_program_and_batch``) on the project
transformer of width ``d`` is compiled twice, with and without the aux metrics, from the same
parameters and batch. The two variants' first steps are compared (``same_update``: the new
parameters are bitwise equal), then the variants are timed interleaved, ``rounds × reps``
steps each, so machine load hits both alike.

Reported per objective: ms per step with and without, the measured share of the step
(``1 − without / with``; within the timing noise when the aux metrics are cheap), and, for
scale, the aux metrics' own cost measured stand-alone (value + grad of the objective at the
same ``B × T`` with minus without aux metrics, ``bench.jax_objective_fn``) and its fraction of
the step. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cliffjax.experiments.bench import (
    Timing,
    fmt_spread,
    jax_objective_fn,
    lower_compile,
    model_config,
    objective_inputs,
    print_table,
    rl_batch,
    time_fn,
    update_program_and_batch,
)

DEFAULT_OBJECTIVES = ("grpo", "mhpo", "dispo")


def _variant(graphdef: Any, params: Any, x: dict[str, np.ndarray], objective: str, aux: bool):
    """``(step(), first params, metric names)`` of one compiled update-phase variant."""
    from cliffjax.training.state import init_state
    from cliffjax.training.update import make_update_phase

    program, batch = update_program_and_batch(graphdef, x, objective, aux_metrics=aux)

    def fresh():  # the step donates its state: every variant starts from its own copy
        copy = jax.tree.map(jnp.copy, params)
        return init_state(copy, program.optimizer(), jax.random.key(1))

    compiled = lower_compile(make_update_phase(program), fresh(), batch)
    first, metrics = compiled(fresh(), batch)
    first_params = jax.device_get(first.params)
    holder = {"state": first}

    def step():
        holder["state"], m = compiled(holder["state"], batch)
        jax.block_until_ready((holder["state"], m))

    return step, first_params, sorted(metrics)


def _bitwise_equal(a: Any, b: Any) -> bool:
    return all(
        np.array_equal(np.asarray(u), np.asarray(v))
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def run(
    objectives: Sequence[str], d: int, batch: int, prompt: int, new: int, rounds: int, reps: int
) -> tuple[list[dict[str, Any]], str]:
    """Time every objective (module docstring); returns ``(records, table)``."""
    from cliffjax.models.policy import make_policy, param_count

    graphdef, params = make_policy(model_config(d, prompt + new), 0)
    n_params = param_count(params)
    x = rl_batch(np.random.default_rng(0), batch, prompt, new)
    x_obj = {k: jnp.asarray(v) for k, v in objective_inputs(batch, new).items()}
    records, rows = [], []
    for name in objectives:
        step_on, p_on, keys_on = _variant(graphdef, params, x, name, True)
        step_off, p_off, keys_off = _variant(graphdef, params, x, name, False)
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(rounds):
            for aux, step in ((True, step_on), (False, step_off)):
                for _ in range(reps):
                    t0 = time.perf_counter()
                    step()
                    times[aux].append(time.perf_counter() - t0)
        t_on, t_off = Timing.of(times[True]), Timing.of(times[False])
        f_on, f_off = jax_objective_fn(name, True), jax_objective_fn(name, False)
        o_on = time_fn(lambda f=f_on: jax.block_until_ready(f(x_obj)), rounds * reps)
        o_off = time_fn(lambda f=f_off: jax.block_until_ready(f(x_obj)), rounds * reps)
        extra = o_on.median - o_off.median
        rec = {
            "objective": name,
            "d": d,
            "params": n_params,
            "B": batch,
            "T": prompt + new,
            "completion_tokens": new,
            "aux_metrics": [k for k in keys_on if k not in keys_off],
            "same_update": _bitwise_equal(p_on, p_off),
            "step_aux": t_on.as_dict(),
            "step_no_aux": t_off.as_dict(),
            "measured_share": 1.0 - t_off.median / t_on.median,
            "objective_aux": o_on.as_dict(),
            "objective_no_aux": o_off.as_dict(),
            "objective_aux_extra_s": extra,
            "objective_aux_fraction_of_step": extra / t_on.median,
        }
        records.append(rec)
        rows.append(
            [
                name,
                f"{1e3 * t_on.median:.1f}",
                fmt_spread(t_on),
                f"{1e3 * t_off.median:.1f}",
                fmt_spread(t_off),
                f"{100 * rec['measured_share']:+.1f}%",
                f"{1e3 * extra:.2f}",
                f"{100 * rec['objective_aux_fraction_of_step']:.2f}%",
                "yes" if rec["same_update"] else "NO",
            ]
        )
        print(f"  aux {name} done", file=sys.stderr, flush=True)
    title = (
        f"Aux metrics in the update step: d={d} ({n_params / 1e6:.2f}M), {batch} seqs x "
        f"({prompt} + {new}) tokens, one optimizer step"
    )
    header = [
        "objective",
        "aux ms",
        "spread",
        "no-aux ms",
        "spread",
        "share",
        "aux alone ms",
        "of step",
        "same update",
    ]
    return records, print_table(title, header, rows)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Command line (module docstring)."""
    from cliffjax.objectives import get_objective, list_objectives

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--objectives", default=",".join(DEFAULT_OBJECTIVES))
    ap.add_argument("--width", type=int, default=128, help="d_model of the project transformer")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--prompt", type=int, default=8)
    ap.add_argument("--new", type=int, default=512, help="completion tokens")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="write the records as JSON here")
    args = ap.parse_args(argv)
    names = [n for n in args.objectives.split(",") if n]
    policy = [n for n in list_objectives() if get_objective(n).kind == "policy"]
    bad = [n for n in names if n not in policy]
    if bad:
        ap.error(f"--objectives: {bad[0]!r} is not a policy objective; expected some of {policy}")
    for field in ("width", "batch", "prompt", "new", "rounds", "reps"):
        if getattr(args, field) < 1:
            ap.error(f"--{field}: expected >= 1, got {getattr(args, field)}")
    records, _ = run(names, args.width, args.batch, args.prompt, args.new, args.rounds, args.reps)
    if args.out is not None:
        args.out.write_text(json.dumps(records, indent=2))
    return records


if __name__ == "__main__":
    main()
