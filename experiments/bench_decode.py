"""Decode cost vs number of new tokens: ``cliffjax.sampling.sample`` vs Hugging Face ``generate``.

    python -m cliffjax.experiments.bench_decode [--quick] [--out decode.json]
    # the ~120M Qwen2 shape alone, batch 16, one timed run per figure
    python -m cliffjax.experiments.bench_decode --models qwen2 --qwen-size 120m --reps 1

Two models, both random-initialised:

* ``char``: the project transformer at the default width (d=128, 2 layers, 4 heads, vocabulary
  20), against a ``LlamaForCausalLM`` of the same sizes;
* ``qwen2``: a Qwen2-architecture model built with transformers and loaded with
  ``cliffjax.models.llama.load_hf``, against the same transformers model. ``--qwen-size 20m``
  (the default) is ~22M parameters (hidden 384, 6 layers, 6 query / 2 KV heads, vocabulary
  16000); ``--qwen-size 120m`` is the shape ``bench_update_hf`` calls ``120m`` (hidden 768,
  12 layers, 12 query / 2 KV heads, vocabulary 32000, tied embeddings: 97.7M parameters),
  so the decode and update tables describe the same model.

For each model, mode (greedy; sampling at temperature 1 without filters) and new-token count
N, the JAX sampler (compiled ahead of time; compile reported separately) and ``generate``
(KV cache, exactly N tokens, no EOS) run on the same prompts; each figure is the median of
``reps`` timed runs after one warm-up run. The stop id is one the models never emit, so every
row decodes all N tokens. The table reports ms per run, ms per new token, the speed-up over
``generate`` and the log-log slope of run time against N (1 = linear in new tokens), and the
load average (``os.getloadavg``) before and after the run: on a shared machine the figures
mean little without it.

Standalone on purpose (it imports only ``cliffjax.models`` and ``cliffjax.sampling``), so the
same script times an older checkout of the library. ``cliffjax.experiments.bench`` runs it as
its ``decode`` section.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# Qwen2-architecture shapes: name -> (hidden, intermediate, layers, heads, KV heads, vocab,
# tied embeddings, initializer range). "120m" is bench_update_hf's "120m" model; "20m" keeps
# the untied, wider-initialised model this benchmark has always timed.
QWEN_SIZES: dict[str, tuple[int, int, int, int, int, int, bool, float]] = {
    "20m": (384, 1024, 6, 6, 2, 16000, False, 0.1),
    "120m": (768, 2048, 12, 12, 2, 32000, True, 0.02),
}


@dataclasses.dataclass(frozen=True)
class DecodeSettings:
    """Sizes of a run.

    Attributes:
      char_batch: prompts per run on the d=128 model.
      char_tokens: new-token counts N on the d=128 model.
      qwen_batch: prompts per run on the Qwen2-architecture model.
      qwen_tokens: new-token counts N on the Qwen2-architecture model.
      modes: "greedy" and/or "sample".
      prompt_len: prompt length P.
      reps: timed runs per figure (after one warm-up run).
      hf: also time Hugging Face ``generate`` (needs torch and transformers, which also build
        the Qwen2-architecture model: without them only the d=128 model is timed).
      qwen_size: the Qwen2-architecture shape, a key of ``QWEN_SIZES``.
    """

    char_batch: int = 32
    char_tokens: tuple[int, ...] = (32, 64, 128, 256, 512)
    qwen_batch: int = 16
    qwen_tokens: tuple[int, ...] = (32, 128, 512)
    modes: tuple[str, ...] = ("greedy", "sample")
    prompt_len: int = 6
    reps: int = 2
    hf: bool = True
    qwen_size: str = "20m"

    def __post_init__(self) -> None:
        if self.qwen_size not in QWEN_SIZES:
            raise ValueError(
                f"DecodeSettings.qwen_size: expected one of {sorted(QWEN_SIZES)}, "
                f"got {self.qwen_size!r}"
            )
        for name in ("char_batch", "qwen_batch", "prompt_len", "reps"):
            if getattr(self, name) < 1:
                raise ValueError(f"DecodeSettings.{name}: expected >= 1, got {getattr(self, name)}")
        bad = [m for m in self.modes if m not in ("greedy", "sample")]
        if bad:
            raise ValueError(f"DecodeSettings.modes: expected 'greedy'/'sample', got {bad[0]!r}")


FULL = DecodeSettings()
QUICK = DecodeSettings(
    char_tokens=(32, 128), qwen_batch=4, qwen_tokens=(32,), modes=("greedy",), reps=1
)


def median_time(fn: Callable[[], Any], reps: int) -> float:
    """Median wall time (s) of ``reps`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of ``log y`` against ``log x`` (nan with fewer than two points)."""
    if len(x) < 2:
        return float("nan")
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def hf_generate(model: Any, prompts: Any, n: int, greedy: bool) -> Any:
    """``generate`` with the KV cache: exactly ``n`` tokens, no EOS, no filters."""
    import torch
    from transformers import GenerationConfig

    gen = GenerationConfig(
        max_new_tokens=n,
        min_new_tokens=n,
        do_sample=not greedy,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        eos_token_id=None,
        pad_token_id=0,
        use_cache=True,
    )
    with torch.inference_mode():
        return model.generate(
            input_ids=prompts, attention_mask=torch.ones_like(prompts), generation_config=gen
        )


def char_models(with_hf: bool) -> tuple[Any, Any, Any, int]:
    """``(graphdef, params, hf model or None, vocab)`` at the project's default sizes."""
    from cliffjax.models.policy import make_policy
    from cliffjax.models.transformer import TransformerConfig

    vocab, d, layers, heads, ff = 20, 128, 2, 4, 512
    cfg = TransformerConfig(
        vocab_size=vocab, max_seq_len=1024, d_model=d, n_layers=layers, n_heads=heads, d_ff=ff
    )
    graphdef, params = make_policy(cfg, 0)
    hf = None
    if with_hf:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        hf_cfg = LlamaConfig(
            vocab_size=vocab,
            hidden_size=d,
            intermediate_size=ff,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            max_position_embeddings=1024,
            rms_norm_eps=1e-6,
            tie_word_embeddings=False,
            bos_token_id=None,
            eos_token_id=None,
            pad_token_id=0,
        )
        hf = LlamaForCausalLM(hf_cfg).eval()
    return graphdef, params, hf, vocab


def qwen_models(size: str = "20m") -> tuple[Any, Any, Any, int]:
    """``(graphdef, params, transformers model, vocab)``: one random Qwen2-architecture model
    of shape ``QWEN_SIZES[size]`` on both sides."""
    import torch
    import transformers

    from cliffjax.models.llama import load_hf

    h, ff, layers, heads, kv, vocab, tied, init = QWEN_SIZES[size]
    torch.manual_seed(0)
    cfg = transformers.Qwen2Config(
        hidden_size=h,
        intermediate_size=ff,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        vocab_size=vocab,
        max_position_embeddings=1024,
        initializer_range=init,
        tie_word_embeddings=tied,
    )
    model = transformers.Qwen2ForCausalLM(cfg).eval()
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        pol = load_hf(d)
    return pol.graphdef, pol.params, model, cfg.vocab_size


def param_millions(params: Any) -> float:
    """Parameter count of a pytree, in millions."""
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params)) / 1e6


def time_model(
    name: str,
    models: tuple[Any, Any, Any, int],
    batch: int,
    tokens: Sequence[int],
    s: DecodeSettings,
) -> dict[str, Any]:
    """Rows for one model: every (mode, N), JAX and (if given) transformers."""
    from cliffjax.sampling import SamplingConfig, sample

    graphdef, params, hf, vocab = models
    hf = hf if s.hf else None
    prompts_np = np.random.default_rng(0).integers(2, vocab, size=(batch, s.prompt_len))
    prompts = jnp.asarray(prompts_np, jnp.int32)
    key = jax.random.key(0)
    rows = []
    for mode in s.modes:
        greedy = mode == "greedy"
        for n in tokens:
            # A stop id no model emits (ids are < vocab): every row decodes all n tokens.
            sc = SamplingConfig(
                max_new_tokens=n, temperature=0.0 if greedy else 1.0, eos_id=vocab, pad_id=0
            )
            fn = jax.jit(lambda p, pr, k, sc=sc: sample(graphdef, p, pr, k, sc))
            t0 = time.perf_counter()
            prog = fn.lower(params, prompts, key).compile()
            compile_s = time.perf_counter() - t0
            t_jax = median_time(
                lambda prog=prog: jax.block_until_ready(prog(params, prompts, key)), s.reps
            )
            row = dict(
                model=name, mode=mode, batch=batch, new_tokens=n, jax_s=t_jax, compile_s=compile_s
            )
            if hf is not None:
                import torch

                hp = torch.tensor(prompts_np, dtype=torch.long)
                row["hf_s"] = median_time(
                    lambda n=n, g=greedy, hp=hp: hf_generate(hf, hp, n, g), s.reps
                )
                row["speedup"] = row["hf_s"] / t_jax
            rows.append(row)
            print(
                f"  decode {name} {mode} N={n}: {1000 * t_jax:.0f} ms", file=sys.stderr, flush=True
            )
    slopes = {}
    for mode in s.modes:
        sel = [r for r in rows if r["mode"] == mode]
        slopes[mode] = {
            "jax": loglog_slope([r["new_tokens"] for r in sel], [r["jax_s"] for r in sel])
        }
        if hf is not None:
            slopes[mode]["hf"] = loglog_slope(
                [r["new_tokens"] for r in sel], [r["hf_s"] for r in sel]
            )
    return {"rows": rows, "slopes": slopes, "params_m": param_millions(params)}


def table(results: dict[str, Any], load: dict[str, Sequence[float]] | None = None) -> str:
    """A plain-text table of every row and the slopes (and the load averages, if given)."""
    lines = [
        "Decode: time vs new tokens N (prompt 6; median of timed runs after a warm-up)",
        *[f"{name}: {res['params_m']:.1f}M parameters" for name, res in results.items()],
        f"{'model':<6} {'mode':<7} {'B':>3} {'N':>4} {'jax ms':>9} {'ms/tok':>7} "
        f"{'compile s':>9} {'HF ms':>9} {'jax/HF':>7}",
    ]
    for name, res in results.items():
        for r in res["rows"]:
            hf = f"{1000 * r['hf_s']:>9.0f} {r['speedup']:>6.2f}x" if "hf_s" in r else ""
            lines.append(
                f"{name:<6} {r['mode']:<7} {r['batch']:>3} {r['new_tokens']:>4} "
                f"{1000 * r['jax_s']:>9.0f} {1000 * r['jax_s'] / r['new_tokens']:>7.2f} "
                f"{r['compile_s']:>9.1f} {hf}"
            )
        for mode, sl in res["slopes"].items():
            extra = f", HF {sl['hf']:.2f}" if "hf" in sl else ""
            lines.append(
                f"{name:<6} {mode:<7} log-log slope of time vs N: jax {sl['jax']:.2f}{extra}"
            )
    if load is not None:
        fmt = " ".join
        before = fmt(f"{v:.2f}" for v in load["before"])
        after = fmt(f"{v:.2f}" for v in load["after"])
        lines.append(f"load average (1/5/15 min): before {before}; after {after}")
    return "\n".join(lines)


def run(s: DecodeSettings, models: Sequence[str] = ("char", "qwen2")) -> tuple[dict, str]:
    """Time the requested models; returns ``(results, table text)``."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401

        have_hf = True
    except ImportError:  # the Qwen2 model is built with transformers
        have_hf = False
    results: dict[str, Any] = {}
    load_before = os.getloadavg()
    if "char" in models:
        hf = have_hf and s.hf
        results["char"] = time_model("char", char_models(hf), s.char_batch, s.char_tokens, s)
    if "qwen2" in models and have_hf:
        results["qwen2"] = time_model(
            "qwen2", qwen_models(s.qwen_size), s.qwen_batch, s.qwen_tokens, s
        )
    load = {"before": list(load_before), "after": list(os.getloadavg())}
    text = table(results, load)
    results["load_average"] = load
    return results, text


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter points")
    parser.add_argument("--models", default="char,qwen2", help="comma-separated: char, qwen2")
    parser.add_argument("--no-hf", action="store_true", help="skip transformers generate")
    parser.add_argument(
        "--qwen-size", default="20m", choices=sorted(QWEN_SIZES), help="Qwen2 model shape"
    )
    parser.add_argument("--qwen-batch", type=int, default=None, help="prompts per run (Qwen2)")
    parser.add_argument(
        "--qwen-tokens", default=None, help="comma-separated new-token counts (Qwen2)"
    )
    parser.add_argument("--modes", default=None, help="comma-separated: greedy, sample")
    parser.add_argument("--reps", type=int, default=None, help="timed runs per figure")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    s = QUICK if args.quick else FULL
    over: dict[str, Any] = {"qwen_size": args.qwen_size}
    if args.no_hf:
        over["hf"] = False
    if args.qwen_batch is not None:
        over["qwen_batch"] = args.qwen_batch
    if args.qwen_tokens is not None:
        over["qwen_tokens"] = tuple(int(n) for n in args.qwen_tokens.split(",") if n)
    if args.modes is not None:
        over["modes"] = tuple(m for m in args.modes.split(",") if m)
    if args.reps is not None:
        over["reps"] = args.reps
    try:
        s = dataclasses.replace(s, **over)
    except ValueError as e:
        parser.error(str(e))
    results, text = run(s, tuple(args.models.split(",")))
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"settings": dataclasses.asdict(s), "results": results}, f, indent=2)
    return results


if __name__ == "__main__":
    main()
