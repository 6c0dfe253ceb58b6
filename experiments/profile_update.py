"""Where the RL update step spends its time: XLA cost analysis and a per-op profile.

    python -m cliffjax.experiments.profile_update --model d128       # built-in transformer
    python -m cliffjax.experiments.profile_update --model qwen2-20m  # Llama-family decoder

Builds the same compiled update step as ``bench`` / ``bench_update_hf``
(``bench.jax_update_step``: ``cliffjax.training.update``'s update phase, one GRPO optimizer
step) on a random model, then reports

* XLA's ``compiled.cost_analysis()``: FLOPs and bytes accessed of the program, and the
  achieved FLOP/s (FLOPs / median step time) against the ``n × n`` float32 matmul rate
  measured in the same process (``bench.matmul_reference``'s method);
* a per-op profile: the step runs under ``jax.profiler`` with XLA:CPU's per-thunk trace
  events (``--xla_cpu_enable_xprof_traceme=true``, set here before JAX starts); every thunk's
  time (summed over threads, so a share of CPU time, not wall time) is attributed to its HLO
  instruction in the compiled module and grouped by op category (matmul, layout copy /
  transpose, concatenate / pad / slice, reductions, elementwise, gather / scatter, other)
  and by the JAX operation that produced it (the HLO ``op_name`` metadata, e.g.
  ``transpose(jvp(...i,io->...o))/dot_general`` for a weight-gradient matmul).

Models: ``d128`` / ``d512`` are the bench's built-in transformers (256 sequences × 10 tokens);
``qwen2-20m`` / ``qwen2-120m`` the Qwen2 shapes of ``bench_update_hf`` (8 × 64 tokens, tied
embeddings, random normal weights, std 0.02); ``tiny`` is the smoke test's.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if "jax" not in sys.modules:  # the trace flag must be set before XLA starts
    flags = os.environ.get("XLA_FLAGS", "")
    if "xprof_traceme" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_enable_xprof_traceme=true".strip()

import jax
import jax.numpy as jnp
import numpy as np

CATEGORIES = (
    "matmul (dot)",
    "layout copy / transpose",
    "concatenate / pad / slice",
    "reduction fusion",
    "elementwise fusion",
    "gather / scatter",
    "other",
)

_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.+?)\s+([\w\-]+)\((.*)$")
_COMP = re.compile(r"^\s*(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_CALLS = re.compile(r"calls=%?([\w.\-]+)")
_SRC = re.compile(r'source_file="([^"]+)"\s+source_line=(\d+)')
_OPNAME = re.compile(r'op_name="([^"]+)"')


def _short_op_name(op_name: str) -> str:
    """The JAX op name of an HLO instruction without the jit / loop prefixes."""
    for prefix in ("jit(update_phase)/", "while/body/", "closed_call/"):
        op_name = op_name.removeprefix(prefix)
    return op_name


def parse_hlo(text: str) -> tuple[dict[str, dict[str, Any]], dict[str, set[str]]]:
    """``(instructions, computations)`` of an HLO module's text.

    ``instructions[name] = {"opcode", "shape", "calls", "source", "op_name"}`` for every
    instruction; ``computations[name]`` is the set of opcodes in that computation (for fusions,
    what the fused computation does).
    """
    instrs: dict[str, dict[str, Any]] = {}
    comps: dict[str, set[str]] = collections.defaultdict(set)
    current = None
    for line in text.splitlines():
        m = _INSTR.match(line)
        if m and current is not None:
            name, shape, opcode, rest = m.groups()
            calls = _CALLS.search(rest)
            src = _SRC.search(rest)
            op_name = _OPNAME.search(rest)
            instrs[name] = {
                "opcode": opcode,
                "shape": shape,
                "calls": calls.group(1) if calls else None,
                "source": (
                    f"{Path(src.group(1)).name}:{src.group(2)}"
                    if src
                    else _short_op_name(op_name.group(1) if op_name else "?")
                ),
                "op_name": op_name.group(1) if op_name else "",
            }
            comps[current].add(opcode)
            continue
        c = _COMP.match(line)
        if c and "=" not in line.split("{")[0]:
            current = c.group(1)
    return instrs, comps


def category(ins: dict[str, Any] | None, comps: dict[str, set[str]]) -> str:
    """The op category (``CATEGORIES``) of one HLO instruction."""
    if ins is None:
        return "other"
    op = ins["opcode"]
    inner = comps.get(ins["calls"] or "", set()) if op == "fusion" else {op}
    if inner & {"dot", "convolution"} or (op == "custom-call" and "matmul" in ins["op_name"]):
        return "matmul (dot)"
    if inner & {"gather", "scatter"}:
        return "gather / scatter"
    if inner & {"reduce", "reduce-window"}:
        return "reduction fusion"
    if inner & {"concatenate", "pad", "slice", "dynamic-slice", "dynamic-update-slice"}:
        return "concatenate / pad / slice"
    layout = {"copy", "transpose", "bitcast", "reshape", "parameter", "broadcast", "constant"}
    if inner and inner <= layout:
        return "layout copy / transpose"
    if op in ("fusion", "add", "multiply", "exponential", "divide", "select", "convert"):
        return "elementwise fusion"
    return "other"


def thunk_times(xplane: str) -> dict[str, float]:
    """Seconds per thunk name, summed over every XLA:CPU thread of a trace."""
    pd = jax.profiler.ProfileData.from_file(xplane)
    out: dict[str, float] = collections.defaultdict(float)
    for plane in pd.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_XLA"):
                continue
            for ev in line.events:
                name = ev.name
                if name.startswith(("end: ", "Threadpool", "ThunkExecutor")):
                    continue
                out[name] += ev.duration_ns * 1e-9
    return dict(out)


def matmul_rate(n: int = 1024, reps: int = 5) -> float:
    """FLOP/s of a jit'd ``n × n`` float32 matmul (median of ``reps`` after a warm-up)."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x).lower(a).compile()
    jax.block_until_ready(f(a))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(f(a))
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / float(np.median(times))


# name -> (hidden, intermediate, layers, heads, kv heads, vocab) as in bench_update_hf
QWEN = {
    "qwen2-20m": (384, 1024, 6, 6, 2, 16000),
    "qwen2-120m": (768, 2048, 12, 12, 2, 32000),
    "tiny": (32, 64, 1, 4, 2, 256),
}


def build(model: str) -> tuple[Any, Any, dict[str, np.ndarray]]:
    """``(graphdef, params, batch)`` of one of the module docstring's models."""
    from cliffjax.experiments import bench

    if model in ("d128", "d512"):
        from cliffjax.models.policy import make_policy

        graphdef, params = make_policy(bench.model_config(int(model[1:]), 128), 0)
        x = bench.rl_batch(np.random.default_rng(0), 256, bench.PROMPT_LEN, 4)
        return graphdef, params, x
    if model not in QWEN:
        raise ValueError(f"--model: expected one of d128, d512, {', '.join(QWEN)}; got {model!r}")
    from cliffjax.models.llama import LlamaConfig
    from cliffjax.models.llama.params import abstract_model

    h, ff, layers, heads, kv, vocab = QWEN[model]
    cfg = LlamaConfig(
        model_type="qwen2",
        vocab_size=vocab,
        hidden_size=h,
        intermediate_size=ff,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=h // heads,
        rope_theta=1e6,
        tie_word_embeddings=True,
        qkv_bias=True,
    )
    graphdef, abstract = abstract_model(cfg)
    paths, treedef = jax.tree_util.tree_flatten_with_path(abstract)
    keys = jax.random.split(jax.random.key(0), len(paths))

    def init(key: Any, path: Any, a: Any) -> Any:
        if "scale" in jax.tree_util.keystr(path):  # RMSNorm gains start at one
            return jnp.ones(a.shape, a.dtype)
        return 0.02 * jax.random.normal(key, a.shape, a.dtype)

    params = jax.tree.unflatten(
        treedef, [init(k, p, a) for k, (p, a) in zip(keys, paths, strict=True)]
    )
    batch, prompt, new = (2, 4, 4) if model == "tiny" else (8, 16, 48)
    x = bench.rl_batch(np.random.default_rng(0), batch, prompt, new, vocab)
    return graphdef, params, x


def profile(model: str, reps: int = 3, traced: int = 2) -> dict[str, Any]:
    """Cost analysis, timing and the per-op profile of one model's update step."""
    from cliffjax.experiments.bench import flops_of, jax_update_step

    graphdef, params, x = build(model)
    step, compiled = jax_update_step(graphdef, params, x)
    ca = compiled.cost_analysis()
    ca = (ca[0] if isinstance(ca, list | tuple) else ca) or {}
    step()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    t_step = float(np.median(times))
    with tempfile.TemporaryDirectory() as d:
        jax.profiler.start_trace(d)
        for _ in range(traced):
            step()
        jax.profiler.stop_trace()
        files = glob.glob(os.path.join(d, "**", "*.xplane.pb"), recursive=True)
        per_thunk = thunk_times(files[0]) if files else {}
    instrs, comps = parse_hlo(compiled.as_text())
    by_cat: dict[str, float] = collections.defaultdict(float)
    by_src: dict[str, float] = collections.defaultdict(float)
    rows = []
    for name, sec in per_thunk.items():
        ins = instrs.get(name)
        if ins is not None and ins["opcode"] in ("while", "conditional", "call"):
            continue  # its body's thunks are timed on their own
        cat = category(ins, comps)
        by_cat[cat] += sec / traced
        src = ins["source"] if ins else "?"
        by_src[src] += sec / traced
        rows.append((sec / traced, name, cat, src, ins["shape"] if ins else "", ins))
    rows.sort(key=lambda r: -r[0])
    flops = flops_of(compiled) or float("nan")
    mm = matmul_rate()
    tokens = int(np.prod(x["prompts"].shape)) + int(np.prod(x["completions"].shape))
    return {
        "model": model,
        "tokens": tokens,
        "step_s": t_step,
        "flops": flops,
        "bytes_accessed": float(ca.get("bytes accessed", float("nan"))),
        "achieved_flops": flops / t_step,
        "matmul_flops": mm,
        "thunk_cpu_s": sum(by_cat.values()),
        "by_category": dict(by_cat),
        "by_source": dict(by_src),
        "top": [
            {"s": s, "name": n, "category": c, "source": src, "shape": sh[:80]}
            for s, n, c, src, sh, _ in rows[:25]
        ],
    }


def report(res: dict[str, Any], top: int = 15) -> str:
    """Plain-text tables of :func:`profile`'s result."""
    total = res["thunk_cpu_s"] or float("nan")
    lines = [
        f"model {res['model']}: {res['tokens']} tokens/step, step {1000 * res['step_s']:.1f} ms "
        f"(median), XLA flops {res['flops'] / 1e9:.2f} G, bytes accessed "
        f"{res['bytes_accessed'] / 1e9:.2f} G",
        f"achieved {res['achieved_flops'] / 1e9:.1f} GFLOP/s = "
        f"{res['achieved_flops'] / res['matmul_flops']:.0%} of the 1024^2 matmul "
        f"({res['matmul_flops'] / 1e9:.0f} GFLOP/s); thunk CPU time {1000 * total:.1f} ms/step",
        "",
        f"{'op category':<28} {'ms/step':>8} {'share':>6}",
    ]
    for cat in CATEGORIES:
        sec = res["by_category"].get(cat, 0.0)
        lines.append(f"{cat:<28} {1000 * sec:>8.1f} {sec / total:>6.1%}")
    lines += ["", f"{'JAX op (HLO op_name)':<60} {'ms/step':>8} {'share':>6}"]
    for src, sec in sorted(res["by_source"].items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{src[-60:]:<60} {1000 * sec:>8.1f} {sec / total:>6.1%}")
    lines += ["", f"{'top thunks':<34} {'ms/step':>8} {'category':<26} source / shape"]
    for r in res["top"][:top]:
        lines.append(
            f"{r['name'][:34]:<34} {1000 * r['s']:>8.2f} {r['category']:<26} "
            f"{r['source'][-50:]} {r['shape']}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command line (module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="d128", help="d128, d512, qwen2-20m, qwen2-120m, tiny")
    ap.add_argument("--reps", type=int, default=3, help="timed steps (after one warm-up)")
    ap.add_argument("--top", type=int, default=15, help="rows of the source and thunk tables")
    ap.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    args = ap.parse_args(argv)
    load0 = os.getloadavg()
    res = profile(args.model, args.reps)
    res["load_average"] = {"before": list(load0), "after": list(os.getloadavg())}
    print(report(res, args.top))
    print(f"load average before {load0[0]:.2f}, after {res['load_average']['after'][0]:.2f}")
    if args.out is not None:
        args.out.write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
