"""Side-by-side benchmarks: cliffjax (JAX) against PyTorch / TRL formulas / Hugging Face.

    python -m cliffjax.experiments.bench [--only objectives,update,sampler,sweep,scaling,decode,
                                                 update_hf]
                                [--quick]
                                [--out bench_results/]          (= make bench ARGS="...")

Every comparison is a ratio of two figures measured in the same process, each the median of
several repetitions after a warm-up (compiles and first calls excluded), with the spread
(min-max over the repetitions). A matmul reference (``n × n`` float32, JAX and PyTorch) is
measured in the same process so achieved FLOP/s can be read as a fraction of it
(timing varies ±30% across runs on a shared CPU).

Sections:

1. ``objectives``: value and gradient w.r.t. the log-probs of every registered objective at
   (B × T) 64×512 and 256×2048, jit-compiled, against the same formulas in PyTorch as TRL
   arranges them (``cliffjax.experiments.bench_torch``), eager and ``torch.compile``.
2. ``update``: one RL optimizer step (forward, backward, clip, AdamW) on 256 sequences × 10
   tokens, model d=128 and d=512: tokens/s, FLOP/s from the compiled program's cost analysis
   (checked against 6·params·tokens), fraction of the same-process matmul; vs the same step
   on Hugging Face ``LlamaForCausalLM``.
3. ``sampler``: ``cliffjax.sampling.sample`` (KV cache) vs re-running the growing prefix each step
   vs Hugging Face ``generate`` (KV cache); batch 256, prompt 6, 4 and 32 new tokens, greedy
   and sampling at temperature 1.
4. ``sweep``: K policy-cliff training runs as one vmapped program vs one after another.
5. ``scaling``: update and sampling time vs completion length and group size; log-log slope.
6. ``decode``: sampler time vs new tokens N = 32 .. 512 (greedy and sampling) on the d=128
   model and a ~22M Qwen2-architecture model, against Hugging Face ``generate``; log-log slope
   (``cliffjax.experiments.bench_decode``).
7. ``update_hf``: the RL update step on a ~20M Qwen2-architecture checkpoint loaded on both
   sides, against the same step in PyTorch (``cliffjax.experiments.bench_update_hf``; needs
   torch and transformers).

Without ``torch`` the PyTorch columns are skipped. On a GPU the same script runs unchanged and
reports the device and its measured matmul rate.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import functools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

SECTIONS = ("objectives", "update", "sampler", "sweep", "scaling", "decode", "update_hf")


# --------------------------------------------------------------------------------------------
# Timing and reporting
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Timing:
    """Seconds per call over repetitions after warm-up.

    Attributes:
      median: median seconds per call.
      lo: fastest repetition.
      hi: slowest repetition.
      times: every repetition (seconds).
    """

    median: float
    lo: float
    hi: float
    times: tuple[float, ...]

    @classmethod
    def of(cls, times: Sequence[float]) -> Timing:
        """The timing of the repetitions ``times`` (seconds)."""
        return cls(statistics.median(times), min(times), max(times), tuple(times))

    def rate(self, work: float) -> tuple[float, float, float]:
        """``work / seconds`` at the median, and its range (from the slowest and fastest)."""
        return work / self.median, work / self.hi, work / self.lo

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def time_fn(fn: Callable[[], Any], reps: int, warmup: int = 1) -> Timing:
    """Time ``fn()`` ``reps`` times after ``warmup`` calls; ``fn`` must synchronise itself
    (``jax.block_until_ready`` / ``torch.cuda.synchronize``) before returning."""
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return Timing.of(times)


def fmt_rate(x: float) -> str:
    """Human-readable rate: 1.23M, 45.6k, 789."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def fmt_spread(t: Timing) -> str:
    """Spread of a timing as ``-a%/+b%`` around the median."""
    return f"-{100 * (1 - t.lo / t.median):.0f}%/+{100 * (t.hi / t.median - 1):.0f}%"


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Print (and return) a plain-text table."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [f"\n## {title}"]
    for j, r in enumerate(cells):
        lines.append(
            "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
        )
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def torch_or_none():
    """The ``cliffjax.experiments.bench_torch`` module, or ``None`` when torch is not installed."""
    try:
        from cliffjax.experiments import bench_torch
    except ImportError:
        return None
    return bench_torch


def machine_info() -> dict[str, Any]:
    """CPU model, core count, load, library versions and the JAX device."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = " ".join(f for f in ("avx512f", "amx_bf16", "amx_tile", "avx512_bf16") if f in text)
    except OSError:
        pass
    info: dict[str, Any] = {
        "time_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jax_device": str(jax.devices()[0]),
        "jax_platform": jax.devices()[0].platform,
        "jax_device_count": jax.device_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "cpu_affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [],
    }
    bt = torch_or_none()
    if bt is not None:
        import torch
        import transformers

        info.update(
            torch=torch.__version__,
            transformers=transformers.__version__,
            torch_device=str(bt.device()),
            torch_threads=torch.get_num_threads(),
        )
    return info


def jax_matmul_gflops(n: int, reps: int = 5) -> list[float]:
    """GFLOP/s of jit-compiled ``n × n`` float32 matmuls on the default JAX device."""
    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (n, n), jnp.float32)
    b = jax.random.normal(kb, (n, n), jnp.float32)
    f = jax.jit(jnp.matmul)
    jax.block_until_ready(f(a, b))
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(f(a, b))
        out.append(2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return out


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes and repetitions of a run (``--quick`` shrinks them).

    Attributes:
      reps: timed repetitions per figure (after one warm-up call).
      obj_shapes: (B, T) of the objective benchmark.
      objectives: objectives benchmarked (None = every registered one).
      compile_objectives: objectives also run with ``torch.compile`` (None = all benchmarked).
      update_widths: model widths of the update benchmark.
      sampler_tokens: new-token counts of the sampler benchmark.
      sampler_modes: "greedy" and/or "sample".
      sweep_k: numbers of runs of the sweep benchmark.
      sweep_steps: RL steps per sweep run.
      sweep_models: model presets of the sweep runs ("small" d=128, "tiny" d=32).
      scaling_lengths: completion lengths N of the scaling benchmark.
      scaling_groups: group sizes G of the scaling benchmark.
      matmul_n: size of the matmul reference.
      proto: also time the ``bench_proto`` prototypes (update and sampler sections).
      decode_quick: the ``decode`` section runs ``bench_decode.QUICK`` (else ``FULL``).
      update_hf_sizes: Qwen2 shapes of the ``update_hf`` section (keys of
        ``bench_update_hf.SIZES``).
    """

    reps: int = 5
    obj_shapes: tuple[tuple[int, int], ...] = ((64, 512), (256, 2048))
    objectives: tuple[str, ...] | None = None
    compile_objectives: tuple[str, ...] | None = None
    update_widths: tuple[int, ...] = (128, 512)
    sampler_tokens: tuple[int, ...] = (4, 32)
    sampler_modes: tuple[str, ...] = ("greedy", "sample")
    sweep_k: tuple[int, ...] = (1, 4, 16)
    sweep_steps: int = 4
    sweep_models: tuple[str, ...] = ("small", "tiny")
    scaling_lengths: tuple[int, ...] = (4, 12, 28, 60)
    scaling_groups: tuple[int, ...] = (2, 4, 8, 16)
    matmul_n: int = 1024
    proto: bool = False
    decode_quick: bool = False
    update_hf_sizes: tuple[str, ...] = ("20m",)


FULL = Settings()
QUICK = Settings(
    reps=3,
    obj_shapes=((64, 512),),
    objectives=("grpo", "dapo", "gspo", "cispo", "dpo"),
    compile_objectives=("grpo",),
    update_widths=(128,),
    sampler_tokens=(4, 32),
    sampler_modes=("greedy",),
    sweep_k=(1, 4),
    sweep_steps=2,
    scaling_lengths=(4, 12, 28),
    scaling_groups=(2, 8),
    decode_quick=True,
    update_hf_sizes=("tiny",),
)


# --------------------------------------------------------------------------------------------
# Shared model setup
# --------------------------------------------------------------------------------------------

VOCAB = 20  # the addition task's tokenizer (digits, +, =, pad, EOS, ...)
PROMPT_LEN = 6  # "37+45="
EOS_ID, PAD_ID = 1, 0


def model_config(d: int, max_len: int = 128):
    """The project transformer at width ``d`` (d=128: the 0.53M default; heads of 32 or 64)."""
    from cliffjax.models.transformer import TransformerConfig

    heads = 4 if d <= 256 else d // 64
    return TransformerConfig(
        vocab_size=VOCAB, max_seq_len=max_len, d_model=d, n_layers=2, n_heads=heads, d_ff=4 * d
    )


def rl_batch(
    rng: np.random.Generator, b: int, p: int, n: int, vocab: int = VOCAB
) -> dict[str, np.ndarray]:
    """A synthetic RL batch: prompts, completions, masks (random lengths), log-probs near the
    policy's, group advantages."""
    prompts = rng.integers(2, vocab, size=(b, p)).astype(np.int32)
    completions = rng.integers(2, vocab, size=(b, n)).astype(np.int32)
    lengths = rng.integers(max(1, n // 2), n + 1, size=b)
    mask = (np.arange(n)[None, :] < lengths[:, None]).astype(np.float32)
    logp_old = (-np.abs(rng.normal(2.5, 0.5, size=(b, n)))).astype(np.float32)
    logp_ref = (logp_old + 0.05 * rng.normal(size=(b, n))).astype(np.float32)
    adv = rng.normal(size=b).astype(np.float32)
    return dict(
        prompts=prompts,
        completions=completions,
        mask=mask,
        logp_old=logp_old,
        logp_ref=logp_ref,
        adv=adv,
        rewards=(adv > 0).astype(np.float32),
    )


# --------------------------------------------------------------------------------------------
# 1. Objectives
# --------------------------------------------------------------------------------------------


def objective_inputs(b: int, t: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Log-probs near ``logp_old`` (ratios within a few % of 1), random completion lengths."""
    rng = np.random.default_rng(seed)
    logp_old = -np.abs(rng.normal(1.0, 1.0, size=(b, t))).astype(np.float32)
    logp = (logp_old + 0.05 * rng.normal(size=(b, t))).astype(np.float32)
    lengths = rng.integers(t // 4, t + 1, size=b)
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.float32)
    return dict(
        logp=logp,
        logp_old=logp_old,
        logp_ref=(logp_old + 0.05 * rng.normal(size=(b, t))).astype(np.float32),
        mask=mask,
        adv=rng.normal(size=b).astype(np.float32),
        rewards=rng.integers(0, 2, size=b).astype(np.float32),
        # preference pairs: rows are (chosen, rejected) halves of the same data
        ref=(logp + 0.05 * rng.normal(size=(b, t))).astype(np.float32),
    )


def jax_objective_fn(name: str, with_aux: bool = True) -> Callable[..., Any]:
    """jit'd ``f(inputs) -> (loss, dloss/dlogp, aux)`` for a registered objective
    (``with_aux=False``: the objective is asked for no aux metrics, ``spec.loss(...,
    with_aux=False)``, and returns ``{}``)."""
    from cliffjax.objectives import PolicyBatch, PreferenceBatch, get_objective

    spec = get_objective(name)
    cfg = spec.default_config
    if spec.kind == "policy":

        def loss(logp, x):
            batch = PolicyBatch(
                logp, x["logp_old"], x["mask"], x["adv"], x["logp_ref"], x["rewards"]
            )
            s, d, aux = spec.loss(batch, cfg, with_aux=with_aux)
            return s / d, aux

    else:

        def loss(logp, x):
            h = logp.shape[0] // 2
            batch = PreferenceBatch(
                logp[:h], logp[h:], x["ref"][:h], x["ref"][h:], x["mask"][:h], x["mask"][h:]
            )
            s, d, aux = spec.loss(batch, cfg, with_aux=with_aux)
            return s / d, aux

    @jax.jit
    def f(x):
        (value, aux), grad = jax.value_and_grad(loss, has_aux=True)(x["logp"], x)
        return value, grad, aux

    return f


def torch_objective_fn(bt, name: str) -> Callable[..., Any]:
    """``f(inputs as tensors) -> (loss, metrics)`` in PyTorch with the project's defaults."""
    from cliffjax.objectives import get_objective

    spec = get_objective(name)
    if spec.kind == "policy":
        inner = bt.policy_objective(name, spec.default_config)

        def f(logp, x):
            return inner(logp, x["logp_old"], x["mask"], x["adv"], x["logp_ref"], x["rewards"])

    else:
        inner = bt.dpo_objective(spec.default_config)

        def f(logp, x):
            h = logp.shape[0] // 2
            r, m = x["ref"], x["mask"]
            return inner(logp[:h], logp[h:], r[:h], r[h:], m[:h], m[h:])

    return f


def bench_objectives(s: Settings, bt) -> tuple[list[dict], str]:
    """Section 1 (module docstring)."""
    from cliffjax.objectives import list_objectives

    names = s.objectives or list_objectives()
    compiled = s.compile_objectives if s.compile_objectives is not None else names
    results, rows = [], []
    for b, t in s.obj_shapes:
        x_np = objective_inputs(b, t)
        x_jax = {k: jnp.asarray(v) for k, v in x_np.items()}
        tokens = b * t
        for name in names:
            f = jax_objective_fn(name)
            tj = time_fn(lambda f=f, x=x_jax: jax.block_until_ready(f(x)), s.reps)
            f0 = jax_objective_fn(name, with_aux=False)
            t0_ = time_fn(lambda f=f0, x=x_jax: jax.block_until_ready(f(x)), s.reps)
            rec = {
                "objective": name,
                "B": b,
                "T": t,
                "jax": tj.as_dict(),
                "jax_no_aux": t0_.as_dict(),
            }
            row = [
                name,
                f"{b}x{t}",
                fmt_rate(tokens / tj.median),
                fmt_spread(tj),
                fmt_rate(tokens / t0_.median),
            ]
            if bt is not None:
                import torch

                x_t = {k: bt.to_torch(v) for k, v in x_np.items()}
                fn = torch_objective_fn(bt, name)

                def run(fn=fn, x_t=x_t):
                    logp = x_t["logp"].detach().requires_grad_(True)
                    loss, metrics = fn(logp, x_t)
                    (grad,) = torch.autograd.grad(loss, logp)
                    _ = [v.item() for v in metrics.values()]  # TRL logs them with .item()
                    bt.sync()
                    return grad

                te = time_fn(run, s.reps)
                rec["torch_eager"] = te.as_dict()
                row += [fmt_rate(tokens / te.median), f"{te.median / tj.median:.2f}x"]
                if name in compiled:
                    # Every objective's wrapper shares one code object: without a reset, dynamo
                    # hits its recompile limit after 8 variants and silently runs eager.
                    torch._dynamo.reset()
                    cfn = torch.compile(fn, dynamic=False)
                    t0 = time.perf_counter()
                    run(cfn)
                    rec["torch_compile_first_call_s"] = time.perf_counter() - t0
                    tc = time_fn(lambda cfn=cfn: run(cfn), s.reps)
                    rec["torch_compile"] = tc.as_dict()
                    row += [fmt_rate(tokens / tc.median), f"{tc.median / tj.median:.2f}x"]
                else:
                    row += ["-", "-"]
            results.append(rec)
            rows.append(row)
            print(f"  objectives {name} {b}x{t} done", file=sys.stderr, flush=True)
    header = ["objective", "BxT", "jax tok/s", "spread", "jax no-aux"]
    if bt is not None:
        header += ["torch eager", "jax/eager", "torch.compile", "jax/compile"]
    return results, print_table("1. Objectives: value + grad w.r.t. log-probs", header, rows)


# --------------------------------------------------------------------------------------------
# 2. Update step
# --------------------------------------------------------------------------------------------


def flops_of(compiled) -> float | None:
    """FLOPs of a compiled program from XLA's cost analysis (None when unavailable)."""
    try:
        ca = compiled.cost_analysis()
    except Exception:
        return None
    if isinstance(ca, list | tuple):
        ca = ca[0] if ca else None
    if not ca or "flops" not in ca:
        return None
    return float(ca["flops"])


def lower_compile(fn: Callable[..., Any], *args: Any, proto: bool = False):
    """``fn.lower(*args).compile()`` (looking through a ``functools.partial`` of a jit).

    With ``proto`` the program is traced under ``bench_proto.flat_dots()``. JAX's tracing caches
    are cleared around it so neither variant reuses the other's trace.
    """
    from cliffjax.experiments import bench_proto

    jax.clear_caches()
    with bench_proto.flat_dots() if proto else contextlib.nullcontext():
        if isinstance(fn, functools.partial):
            compiled = fn.func.lower(*fn.args, *args, **fn.keywords).compile()
        else:
            compiled = fn.lower(*args).compile()
    jax.clear_caches()
    return compiled


def update_program_and_batch(
    graphdef: Any, x: dict[str, np.ndarray], objective: str = "grpo", aux_metrics: bool = True
):
    """``(program, batch)`` of the update step :func:`jax_update_step` times: the trainer's
    update phase for one epoch of one minibatch (one optimizer step) of ``objective`` with its
    default config, on the synthetic batch ``x`` (:func:`rl_batch`)."""
    from cliffjax.objectives import get_objective
    from cliffjax.tasks.registry import get_task
    from cliffjax.training.config import RLConfig
    from cliffjax.training.program import RLProgram
    from cliffjax.training.rollout import Rollout

    b = x["prompts"].shape[0]
    spec = get_objective(objective)
    rl = RLConfig(
        steps=1000,
        prompts_per_step=b,
        group_size=1,
        epochs=1,
        minibatches=1,
        aux_metrics=aux_metrics,
    )
    # The task only sizes the program here (fixed-width prompts; the batch is synthetic).
    program = RLProgram(graphdef, get_task("addition"), spec, spec.default_config, rl)
    batch = Rollout(
        jnp.asarray(x["prompts"]),
        jnp.asarray(x["completions"]),
        jnp.asarray(x["mask"]),
        jnp.asarray(x["logp_old"]),
        jnp.asarray(x["logp_ref"]) if spec.default_config.beta else None,
        jnp.asarray(x["adv"]),
        jnp.asarray(x["rewards"]),
    )
    return program, batch


def jax_update_step(
    graphdef: Any, params: Any, x: dict[str, np.ndarray], objective: str = "grpo", proto=False
):
    """``(step(), compiled)``: the project's RL update (``cliffjax.training.update``'s update
    phase: one epoch, one minibatch = one optimizer step) of ``(graphdef, params)`` on the
    synthetic batch ``x`` (:func:`rl_batch`), compiled ahead of time (``proto``: with the
    ``bench_proto`` prototype)."""
    from cliffjax.training.state import init_state
    from cliffjax.training.update import make_update_phase

    program, batch = update_program_and_batch(graphdef, x, objective)
    holder = {"state": init_state(params, program.optimizer(), jax.random.key(1))}
    compiled = lower_compile(make_update_phase(program), holder["state"], batch, proto=proto)

    def step():
        holder["state"], metrics = compiled(holder["state"], batch)
        jax.block_until_ready((holder["state"], metrics))

    return step, compiled


def jax_update(
    d: int, b: int, n: int, objective: str = "grpo", max_len: int = 128, proto: bool = False
):
    """``(step(), tokens, params, compiled flops, batch)`` for :func:`jax_update_step` on the
    project transformer of width ``d``."""
    from cliffjax.models.policy import make_policy, param_count

    graphdef, params = make_policy(model_config(d, max_len), 0)
    x = rl_batch(np.random.default_rng(0), b, PROMPT_LEN, n)
    step, compiled = jax_update_step(graphdef, params, x, objective, proto=proto)
    return step, b * (PROMPT_LEN + n), param_count(params), flops_of(compiled), x


def torch_update_step(bt, model: Any, x: dict[str, np.ndarray], objective: str = "grpo"):
    """``run()``: the same step on a Hugging Face model (``bench_torch.make_update_step``)."""
    import torch

    from cliffjax.objectives import get_objective

    spec = get_objective(objective)
    step = bt.make_update_step(model, x["prompts"].shape[1], objective, spec.default_config)
    ids = np.concatenate([x["prompts"], x["completions"]], axis=1)
    batch = {
        "input_ids": bt.to_torch(ids, torch.long),
        "mask": bt.to_torch(x["mask"]),
        "logp_old": bt.to_torch(x["logp_old"]),
        "logp_ref": bt.to_torch(x["logp_ref"]),
        "adv": bt.to_torch(x["adv"]),
    }

    def run():
        step(batch)
        bt.sync()

    return run


def torch_update(bt, d: int, x: dict[str, np.ndarray], objective: str = "grpo"):
    """:func:`torch_update_step` on a Hugging Face Llama of the project transformer's sizes."""
    cfg = model_config(d)
    model = bt.llama(VOCAB, d, cfg.n_layers, cfg.n_heads, cfg.d_ff, cfg.max_seq_len)
    return torch_update_step(bt, model, x, objective), bt.num_params(model)


def bench_update(s: Settings, bt, mm: dict[str, float]) -> tuple[list[dict], str]:
    """Section 2 (module docstring)."""
    results, rows = [], []
    b, n = 256, 4
    for d in s.update_widths:
        step, tokens, n_params, flops, x = jax_update(d, b, n)
        tj = time_fn(step, s.reps)
        six_n = 6 * n_params * tokens
        gfl = (flops or six_n) / tj.median / 1e9
        rec = {
            "d": d,
            "params": n_params,
            "tokens": tokens,
            "jax": tj.as_dict(),
            "jax_cost_analysis_flops": flops,
            "six_n_tokens_flops": six_n,
            "jax_gflops": gfl,
            "jax_matmul_fraction": gfl / mm["jax"],
        }
        row = [
            f"d={d}",
            f"{n_params / 1e6:.2f}M",
            fmt_rate(tokens / tj.median),
            fmt_spread(tj),
            f"{gfl:.0f}",
            "-" if flops is None else f"{flops / six_n:.2f}",
            f"{gfl / mm['jax']:.0%}",
        ]
        if s.proto:
            step_p = jax_update(d, b, n, proto=True)[0]
            tpr = time_fn(step_p, s.reps)
            rec["jax_proto"] = tpr.as_dict()
            row += [fmt_rate(tokens / tpr.median), f"{tj.median / tpr.median:.2f}x"]
        if bt is not None:
            run, tp = torch_update(bt, d, x)
            tt = time_fn(run, s.reps)
            tgfl = 6 * tp * tokens / tt.median / 1e9
            rec.update(
                torch=tt.as_dict(),
                torch_params=tp,
                torch_gflops_6n=tgfl,
                torch_matmul_fraction=tgfl / mm["torch"],
            )
            row += [
                fmt_rate(tokens / tt.median),
                fmt_spread(tt),
                f"{tgfl:.0f}",
                f"{tgfl / mm['torch']:.0%}",
                f"{tt.median / tj.median:.2f}x",
            ]
        results.append(rec)
        rows.append(row)
        print(f"  update d={d} done", file=sys.stderr, flush=True)
    header = ["model", "params", "jax tok/s", "spread", "GFLOP/s", "XLA/6N", "of matmul"]
    if s.proto:
        header += ["proto tok/s", "proto/jax"]
    if bt is not None:
        header += ["torch tok/s", "spread", "GFLOP/s(6N)", "of matmul", "jax/torch"]
    title = f"2. Update step: {b} seqs x {PROMPT_LEN + n} tokens, fwd+bwd+clip+AdamW (GRPO)"
    return results, print_table(title, header, rows)


# --------------------------------------------------------------------------------------------
# 3. Sampler
# --------------------------------------------------------------------------------------------


def make_reforward(graphdef: Any) -> Callable[..., Any]:
    """Decoding without a cache: each step re-runs the forward pass over the whole prefix
    (one compile per prefix length, done in the warm-up)."""
    from cliffjax.models.policy import apply

    @jax.jit
    def next_token(params, tokens, key, greedy):
        pos = jnp.broadcast_to(jnp.arange(tokens.shape[1], dtype=jnp.int32), tokens.shape)
        logits, _ = apply(graphdef, params, tokens, pos)
        last = logits[:, -1]
        tok = jnp.where(greedy, jnp.argmax(last, -1), jax.random.categorical(key, last, -1))
        return jnp.concatenate([tokens, tok[:, None].astype(jnp.int32)], axis=1)

    def decode(params, prompts, key, n: int, greedy: bool):
        tokens = prompts
        for t in range(n):
            tokens = next_token(params, tokens, jax.random.fold_in(key, t), greedy)
        return tokens

    return decode


def sampler_program(graphdef: Any, params: Any, prompts: Any, key: Any, sc: Any, proto=False):
    """``cliffjax.sampling.sample`` for one config, compiled ahead of time:
    ``prog(params, prompts, key) -> SampleOutput``."""
    from cliffjax.sampling import sample

    fn = jax.jit(lambda p, pr, k: sample(graphdef, p, pr, k, sc))
    return lower_compile(fn, params, prompts, key, proto=proto)


def bench_sampler(s: Settings, bt) -> tuple[list[dict], str]:
    """Section 3 (module docstring)."""
    from cliffjax.models.policy import make_policy
    from cliffjax.sampling import SamplingConfig

    b = 256
    cfg = model_config(128)
    graphdef, params = make_policy(cfg, 0)
    prompts_np = np.random.default_rng(0).integers(2, VOCAB, size=(b, PROMPT_LEN)).astype(np.int32)
    prompts = jnp.asarray(prompts_np)
    key = jax.random.key(0)
    reforward = make_reforward(graphdef)
    hf = None
    if bt is not None:
        import torch

        hf = bt.llama(VOCAB, 128, cfg.n_layers, cfg.n_heads, cfg.d_ff, cfg.max_seq_len)
        hf_prompts = bt.to_torch(prompts_np, torch.long)
    results, rows = [], []
    for n in s.sampler_tokens:
        for mode in s.sampler_modes:
            greedy = mode == "greedy"
            sc = SamplingConfig(
                max_new_tokens=n, temperature=0.0 if greedy else 1.0, eos_id=EOS_ID, pad_id=PAD_ID
            )
            prog = sampler_program(graphdef, params, prompts, key, sc)
            tj = time_fn(
                lambda prog=prog: jax.block_until_ready(prog(params, prompts, key)), s.reps
            )
            tr = time_fn(
                lambda n=n, g=greedy: jax.block_until_ready(reforward(params, prompts, key, n, g)),
                max(2, s.reps - 2),
            )
            work = b * n
            rec = {
                "new_tokens": n,
                "mode": mode,
                "batch": b,
                "jax": tj.as_dict(),
                "reforward": tr.as_dict(),
            }
            row = [
                n,
                mode,
                fmt_rate(work / tj.median),
                fmt_spread(tj),
                fmt_rate(work / tr.median),
                f"{tr.median / tj.median:.1f}x",
            ]
            if s.proto:
                prog = sampler_program(graphdef, params, prompts, key, sc, proto=True)
                tpr = time_fn(
                    lambda prog=prog: jax.block_until_ready(prog(params, prompts, key)), s.reps
                )
                rec["jax_proto"] = tpr.as_dict()
                row += [fmt_rate(work / tpr.median), f"{tj.median / tpr.median:.2f}x"]
            if hf is not None:

                def run(n=n, g=greedy):
                    bt.generate(hf, hf_prompts, n, g)
                    bt.sync()

                th = time_fn(run, s.reps)
                rec["hf_generate"] = th.as_dict()
                row += [fmt_rate(work / th.median), fmt_spread(th), f"{th.median / tj.median:.2f}x"]
            results.append(rec)
            rows.append(row)
            print(f"  sampler N={n} {mode} done", file=sys.stderr, flush=True)
    header = ["new", "mode", "jax tok/s", "spread", "re-forward", "jax/re-fwd"]
    if s.proto:
        header += ["proto tok/s", "proto/jax"]
    if hf is not None:
        header += ["HF generate", "spread", "jax/HF"]
    title = f"3. Sampler: batch {b}, prompt {PROMPT_LEN}, d=128 (generated tokens/s)"
    return results, print_table(title, header, rows)


# --------------------------------------------------------------------------------------------
# 4. Sweeps
# --------------------------------------------------------------------------------------------


def cliff_train_fn(
    steps: int, prompts_per_step: int = 8, group_size: int = 4, preset: str = "small"
):
    """The policy-cliff job's pure ``train(init_params, key, eps)`` (the in-graph driver of the
    one RL step, ``cliffjax.training.rl.make_rl_train``, with the shift ``r + ε·δ``) on
    addition, GRPO without KL, a small RL batch (``prompts_per_step × group_size``) per step;
    model = the ``cliffjax.models.transformer`` preset ("small": d=128, the default; "tiny":
    d=32)."""
    from cliffjax.analysis import Perturbation, PerturbedReward, RewardShift, num_answers
    from cliffjax.models.policy import make_policy
    from cliffjax.models.transformer import preset_config
    from cliffjax.objectives import get_objective
    from cliffjax.tasks.registry import get_task
    from cliffjax.tasks.wrappers import FixedPrompts
    from cliffjax.training.config import RLConfig
    from cliffjax.training.program import RLProgram
    from cliffjax.training.rl import make_rl_train

    task = get_task("addition")
    tok = task.tokenizer
    cfg = preset_config(preset, tok.vocab_size, 64)
    graphdef, params = make_policy(cfg, 0)
    spec = get_objective("grpo")
    obj_cfg = dataclasses.replace(spec.default_config, beta=0.0)
    rl = RLConfig(
        steps=steps,
        prompts_per_step=prompts_per_step,
        group_size=group_size,
        epochs=1,
        minibatches=1,
    )
    max_digits = 3
    n_train = 64
    tp, tm = task.train_prompt_set(jax.random.key(2), n_train)
    program = RLProgram(
        graphdef,
        FixedPrompts(task, tp, tm),
        spec,
        obj_cfg,
        rl,
        PerturbedReward(max_digits, tok.digit0_id, tok.eos_id),
    )
    pert = Perturbation(
        jnp.zeros((n_train, num_answers(max_digits)), jnp.float32), jnp.zeros((0,), jnp.float32)
    )
    run = make_rl_train(program)

    def train(init_params, key, eps, pert):
        return run(init_params, key, None, RewardShift(eps, pert))[:2]

    return train, params, pert


def bench_sweep(s: Settings) -> tuple[list[dict], str]:
    """Section 4 (module docstring)."""
    results, rows = [], []
    reps = max(2, s.reps - 2)
    for preset, k in [(m, k) for m in s.sweep_models for k in s.sweep_k]:
        train, params, pert = cliff_train_fn(s.sweep_steps, preset=preset)
        single = jax.jit(train)
        batched = jax.jit(jax.vmap(train, in_axes=(None, 0, 0, None)))
        keys = jax.random.split(jax.random.key(3), k)
        eps = jnp.linspace(0.0, 0.3, k).astype(jnp.float32)

        # Per-run arguments are sliced before timing: eager indexing costs ~3 ms per call here.
        args = [(keys[i], eps[i]) for i in range(k)]

        def seq(args=args, single=single, params=params, pert=pert):
            out = [single(params, key, e, pert) for key, e in args]
            jax.block_until_ready(out)

        def vm(keys=keys, eps=eps, batched=batched, params=params, pert=pert):
            jax.block_until_ready(batched(params, keys, eps, pert))

        ts_ = time_fn(seq, reps)
        tv = time_fn(vm, reps)
        results.append(
            {
                "model": preset,
                "K": k,
                "steps": s.sweep_steps,
                "sequential": ts_.as_dict(),
                "vmapped": tv.as_dict(),
            }
        )
        rows.append(
            [
                preset,
                k,
                f"{1000 * ts_.median / k:.0f}",
                fmt_spread(ts_),
                f"{1000 * tv.median / k:.0f}",
                fmt_spread(tv),
                f"{tv.median / ts_.median:.2f}",
            ]
        )
        print(f"  sweep {preset} K={k} done", file=sys.stderr, flush=True)
    header = ["model", "K", "sequential ms/run", "spread", "vmapped ms/run", "spread", "vmap/seq"]
    title = (
        f"4. Sweeps: policy-cliff train, {s.sweep_steps} RL steps of 8 prompts x 4 per run "
        "(small: d=128 2 layers; tiny: d=32 2 layers)"
    )
    return results, print_table(title, header, rows)


# --------------------------------------------------------------------------------------------
# 5. Scaling
# --------------------------------------------------------------------------------------------


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of ``log y`` against ``log x``."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def bench_scaling(s: Settings) -> tuple[list[dict], str]:
    """Section 5: RL step time (sampling with group sharing + one update) vs N and G."""
    from cliffjax.models.policy import make_policy
    from cliffjax.sampling import SamplingConfig, sample

    cfg = model_config(128, 128)
    graphdef, params = make_policy(cfg, 0)
    n_prompts = 32
    reps = max(2, s.reps - 2)

    def point(n: int, g: int) -> dict[str, Any]:
        b = n_prompts * g
        step, _tokens, _, _, _ = jax_update(128, b, n)
        prompts = jnp.asarray(
            np.random.default_rng(0).integers(2, VOCAB, size=(n_prompts, PROMPT_LEN)), jnp.int32
        )
        sc = SamplingConfig(
            max_new_tokens=n, temperature=1.0, eos_id=EOS_ID, pad_id=PAD_ID, group_size=g
        )
        tsm = time_fn(
            lambda: jax.block_until_ready(sample(graphdef, params, prompts, jax.random.key(0), sc)),
            reps,
        )
        tu = time_fn(step, reps)
        return {
            "N": n,
            "G": g,
            "B": b,
            "T": PROMPT_LEN + n,
            "sample": tsm.as_dict(),
            "update": tu.as_dict(),
            "step_s": tsm.median + tu.median,
        }

    results, rows = [], []
    for axis, values in (("N", s.scaling_lengths), ("G", s.scaling_groups)):
        pts = [point(v, 8) if axis == "N" else point(4, v) for v in values]
        xs = [p["T"] if axis == "N" else p["G"] for p in pts]
        slope_step = loglog_slope(xs, [p["step_s"] for p in pts])
        slope_upd = loglog_slope(xs, [p["update"]["median"] for p in pts])
        slope_smp = loglog_slope(xs, [p["sample"]["median"] for p in pts])
        for p in pts:
            rows.append(
                [
                    axis,
                    p["N"],
                    p["G"],
                    p["B"],
                    p["T"],
                    f"{1000 * p['sample']['median']:.1f}",
                    f"{1000 * p['update']['median']:.1f}",
                    f"{1000 * p['step_s']:.1f}",
                ]
            )
        rows.append(
            [
                f"slope d log t / d log {'T' if axis == 'N' else 'G'}",
                "",
                "",
                "",
                "",
                f"{slope_smp:.2f}",
                f"{slope_upd:.2f}",
                f"{slope_step:.2f}",
            ]
        )
        results.append(
            {
                "axis": axis,
                "points": pts,
                "slope_step": slope_step,
                "slope_update": slope_upd,
                "slope_sample": slope_smp,
            }
        )
        print(f"  scaling {axis} done", file=sys.stderr, flush=True)
    header = ["vary", "N", "G", "B", "T", "sample ms", "update ms", "step ms"]
    title = f"5. Scaling: {n_prompts} prompts x G, prompt {PROMPT_LEN} + N new tokens, d=128"
    return results, print_table(title, header, rows)


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def run(sections: Sequence[str], settings: Settings, out_dir: Path | None) -> dict[str, Any]:
    """Run the chosen sections; print tables; write ``<out>/bench-<time>.json`` and
    ``<out>/latest.json`` (and ``.txt`` with the tables)."""
    bt = torch_or_none()
    info = machine_info()
    print(f"# cliffjax bench  {info['time_utc']}")
    print(
        f"# device: {info['jax_device']} ({info['jax_platform']}); CPU: {info['cpu']}, "
        f"{info['cores']} cores (affinity {info['cpu_affinity']}); load {info['load_avg'][0]:.2f}"
    )
    print(
        f"# jax {info['jax']}"
        + (
            f", torch {info['torch']} ({info['torch_threads']} threads), "
            f"transformers {info['transformers']}"
            if bt
            else " (torch not installed: JAX only)"
        )
    )
    n_mm = settings.matmul_n if info["jax_platform"] == "cpu" else 4096
    mm_j = jax_matmul_gflops(n_mm, settings.reps)
    mm = {"jax": statistics.median(mm_j)}
    mm_text = f"# matmul {n_mm}^2 f32: jax {mm['jax']:.0f} GFLOP/s (min {min(mm_j):.0f}, max {max(mm_j):.0f})"
    if bt is not None:
        mm_t = bt.matmul_gflops(n_mm, settings.reps)
        mm["torch"] = statistics.median(mm_t)
        mm_text += f"; torch {mm['torch']:.0f} (min {min(mm_t):.0f}, max {max(mm_t):.0f})"
    print(mm_text, flush=True)
    report: dict[str, Any] = {
        "machine": info,
        "settings": dataclasses.asdict(settings),
        "matmul_gflops": {"n": n_mm, "jax": mm_j, **({"torch": mm_t} if bt else {})},
    }
    tables = [mm_text]
    t_start = time.perf_counter()
    for name in sections:
        t0 = time.perf_counter()
        if name == "objectives":
            res, table = bench_objectives(settings, bt)
        elif name == "update":
            res, table = bench_update(settings, bt, mm)
        elif name == "sampler":
            res, table = bench_sampler(settings, bt)
        elif name == "sweep":
            res, table = bench_sweep(settings)
        elif name == "decode":
            from cliffjax.experiments import bench_decode

            ds = bench_decode.QUICK if settings.decode_quick else bench_decode.FULL
            ds = dataclasses.replace(ds, hf=bt is not None)
            res, table = bench_decode.run(ds)
            print(table, flush=True)
        elif name == "scaling":
            res, table = bench_scaling(settings)
        elif name == "update_hf":
            if bt is None:
                res, table = [], "\n## update_hf: skipped (needs torch and transformers)"
                print(table, flush=True)
            else:
                from cliffjax.experiments import bench_update_hf

                res, table = bench_update_hf.run(
                    settings.update_hf_sizes, batch=8, prompt=16, new=48, reps=settings.reps
                )
        else:
            raise ValueError(f"unknown section {name!r}")
        report[name] = res
        report[f"{name}_wall_s"] = time.perf_counter() - t0
        tables.append(table)
    report["wall_s"] = time.perf_counter() - t_start
    report["load_avg_end"] = os.getloadavg()
    print(f"\n# total {report['wall_s']:.0f} s; load at end {report['load_avg_end'][0]:.2f}")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        text = json.dumps(report, indent=1, default=str)
        (out_dir / f"bench-{stamp}.json").write_text(text)
        (out_dir / "latest.json").write_text(text)
        (out_dir / "latest.txt").write_text("\n".join(tables) + "\n")
        print(f"# wrote {out_dir / f'bench-{stamp}.json'}")
    return report


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m cliffjax.experiments.bench", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}"
    )
    p.add_argument("--quick", action="store_true", help="smaller sizes and fewer repetitions")
    p.add_argument("--reps", type=int, default=0, help="override the repetitions per figure")
    p.add_argument(
        "--proto", action="store_true", help="also time the bench_proto speed prototypes"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="PyTorch intra-op threads (0 = its default); pair 1 with `taskset -c 1` and "
        "XLA_FLAGS=--xla_cpu_multi_thread_eigen=false for a one-core comparison",
    )
    p.add_argument("--out", default="bench_results", help="output folder ('' = no files)")
    args = p.parse_args(argv)
    bad = [x for x in args.only.split(",") if x not in SECTIONS]
    if bad:
        p.error(f"--only: unknown section(s) {bad}; choose from {SECTIONS}")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.reps:
        settings = dataclasses.replace(settings, reps=args.reps)
    if args.proto:
        settings = dataclasses.replace(settings, proto=True)
    sections = [x for x in SECTIONS if x in args.only.split(",")]
    if args.threads and torch_or_none() is not None:
        import torch

        torch.set_num_threads(args.threads)
    return run(sections, settings, Path(args.out) if args.out else None)


if __name__ == "__main__":
    main()
