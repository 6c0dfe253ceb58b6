"""In-process A/B of the RL update step: the model code at a git revision against the current one.

    python -m cliffjax.experiments.ab_update --model qwen2-20m --base main --rounds 5

Both variants run in one process on the same parameters and batch
(``profile_update.build``): the "base" variant's model module (``core/models/transformer.py``
for ``d128`` / ``d512``, ``core/models/llama/modeling.py`` for the Qwen2 shapes) and ``core/sampling/scoring.py``
are read from ``git show <base>:<path>`` and imported under a private name; the "new" variant is the installed package. Each variant's
update step (``bench.jax_update_step``) is compiled ahead of time, then the two are timed
interleaved (``rounds`` × ``reps`` steps each, after a warm-up), so machine load hits both
alike. Reports the median step time of each, the ratio base/new (> 1: the new code is
faster), and the largest difference between the two variants' log-probs, entropies and
parameter gradients (``outputs_diff``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

ROOT = Path(__file__).resolve().parents[1]


def module_at(rev: str, path: str, name: str) -> Any:
    """The module at ``path`` (relative to the repository root) as of git ``rev``."""
    src = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:{path}"], check=True, capture_output=True
    ).stdout
    tmp = Path(tempfile.mkdtemp()) / f"{name}.py"
    tmp.write_bytes(src)
    spec = importlib.util.spec_from_file_location(name, tmp)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def rebuild_graphdef(graphdef: Any, params: Any, module: Any, model: str) -> Any:
    """The graphdef of the same model built from ``module``'s classes (same parameter paths)."""
    cfg = nnx.merge(graphdef, params).config
    cls = module.Transformer if model in ("d128", "d512") else module.LlamaModel

    def build():
        with nnx.use_eager_sharding(False):
            return cls(cfg, jax.random.key(0)) if cls.__name__ == "Transformer" else cls(cfg)

    return nnx.graphdef(nnx.eval_shape(build))


@contextlib.contextmanager
def scoring_from(module: Any | None) -> Iterator[None]:
    """Trace the update step with ``module.score_with_entropy`` (when given)."""
    import cliffjax.training.update as upd

    if module is None:
        yield
        return
    saved = upd.score_with_entropy
    upd.score_with_entropy = module.score_with_entropy
    try:
        yield
    finally:
        upd.score_with_entropy = saved


def run(model: str, base: str, rounds: int, reps: int) -> dict[str, Any]:
    """Compile both variants and time them interleaved (module docstring)."""
    from cliffjax.experiments.bench import jax_update_step
    from cliffjax.experiments.profile_update import build

    graphdef, params, x = build(model)
    path = (
        "core/models/transformer.py"
        if model in ("d128", "d512")
        else "core/models/llama/modeling.py"
    )
    old_model = module_at(base, path, "_ab_base_model")
    old_scoring = module_at(base, "core/sampling/scoring.py", "_ab_base_scoring")
    gd_base = rebuild_graphdef(graphdef, params, old_model, model)
    copy = lambda: jax.tree.map(lambda a: a.copy(), params)  # each step donates its state
    with scoring_from(old_scoring):
        step_base, _ = jax_update_step(gd_base, copy(), x)
    step_new, _ = jax_update_step(graphdef, copy(), x)
    diff = outputs_diff(gd_base, graphdef, params, x, old_scoring)
    step_base()
    step_new()
    tb, tn = [], []
    for _ in range(rounds):
        for fn, acc in ((step_base, tb), (step_new, tn)):
            for _ in range(reps):
                t0 = time.perf_counter()
                fn()
                acc.append(time.perf_counter() - t0)
    mb, mn = float(np.median(tb)), float(np.median(tn))
    return {"model": model, "base": base, "base_s": mb, "new_s": mn, "ratio": mb / mn, "diff": diff}


def outputs_diff(gd_base: Any, gd_new: Any, params: Any, x: dict, old_scoring: Any) -> float:
    """Largest |difference| of the per-token log-probs, entropies and the gradient of
    ``Σ logp + Σ entropy`` between the two variants (same parameters, same batch)."""
    import jax.numpy as jnp

    from cliffjax.sampling import score_with_entropy

    prompts, completions = jnp.asarray(x["prompts"]), jnp.asarray(x["completions"])

    def outputs(gd, fn):
        def total(p):
            logp, ent = fn(gd, p, prompts, completions)
            return jnp.sum(logp) + jnp.sum(ent), (logp, ent)

        (_, aux), grads = jax.jit(jax.value_and_grad(total, has_aux=True))(params)
        return jax.tree.leaves((aux, grads))

    base_fn = old_scoring.score_with_entropy if old_scoring is not None else score_with_entropy
    a, b = outputs(gd_base, base_fn), outputs(gd_new, score_with_entropy)
    return max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(a, b, strict=True))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command line (module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="d128", help="d128, d512, qwen2-20m, qwen2-120m, tiny")
    ap.add_argument("--base", default="main", help="git revision of the base variant")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=2, help="steps per variant per round")
    args = ap.parse_args(argv)
    load0 = os.getloadavg()
    res = run(args.model, args.base, args.rounds, args.reps)
    res["load_average"] = [load0[0], os.getloadavg()[0]]
    print(
        f"{res['model']}: base ({args.base}) {1000 * res['base_s']:.1f} ms, new "
        f"{1000 * res['new_s']:.1f} ms, base/new {res['ratio']:.3f}x; max |diff| of outputs "
        f"{res['diff']:.2e}; load {res['load_average'][0]:.2f} -> {res['load_average'][1]:.2f}"
    )
    return res


if __name__ == "__main__":
    main()
