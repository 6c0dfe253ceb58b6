"""RL update step on Qwen2-architecture checkpoints: cliffjax against the same step in PyTorch.

    python -m cliffjax.experiments.bench_update_hf                  # ~20M and ~120M models
    python -m cliffjax.experiments.bench_update_hf --sizes 20m --reps 3 --out update_hf.json

One random ``Qwen2ForCausalLM`` per size is saved as safetensors and loaded on both sides
(``cliffjax.models.llama.load_hf`` and transformers), so both frameworks update the same
weights. The step is one GRPO optimizer step on a synthetic batch of ``batch`` sequences of
``prompt + new`` tokens: forward over prompt and completion, per-token log-probs and entropy,
the objective, backward, global-norm clipping and AdamW — ``cliffjax.training.update``'s
update phase (compiled ahead of time) against ``bench_torch.make_update_step`` (TRL-style,
``logits_to_keep``), float32 on both sides. Prints a table (tokens/s, ratio) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cliffjax.experiments import bench_torch
from cliffjax.experiments.bench import (
    fmt_rate,
    fmt_spread,
    jax_update_step,
    print_table,
    rl_batch,
    time_fn,
    torch_update_step,
)
from cliffjax.experiments.bench_decode import QWEN_SIZES

# name -> (hidden, intermediate, layers, heads, kv heads, vocab); the shapes bench_decode's
# --qwen-size times (this step always ties the embeddings).
SIZES: dict[str, tuple[int, int, int, int, int, int]] = {
    **{name: shape[:6] for name, shape in QWEN_SIZES.items()},
    "tiny": (32, 64, 1, 4, 2, 256),  # the smoke test's
}


def jax_step(ckpt: str, x: dict[str, np.ndarray]):
    """``(step(), n_params)``: the project's update phase on the loaded checkpoint."""
    from cliffjax.models.llama import load_hf
    from cliffjax.models.policy import param_count

    pol = load_hf(ckpt)
    step, _ = jax_update_step(pol.graphdef, pol.params, x)
    return step, param_count(pol.params)


def run(
    sizes: Sequence[str], batch: int, prompt: int, new: int, reps: int
) -> tuple[list[dict[str, Any]], str]:
    """Time every size (module docstring); returns ``(records, table)``."""
    import torch
    import transformers

    records, rows = [], []
    for name in sizes:
        h, ff, layers, heads, kv, vocab = SIZES[name]
        torch.manual_seed(0)
        cfg = transformers.Qwen2Config(
            hidden_size=h,
            intermediate_size=ff,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=kv,
            vocab_size=vocab,
            max_position_embeddings=2048,
            tie_word_embeddings=True,
        )
        model = transformers.Qwen2ForCausalLM(cfg).train()
        x = rl_batch(np.random.default_rng(0), batch, prompt, new, vocab)
        with tempfile.TemporaryDirectory() as d:
            model.save_pretrained(d)
            jstep, n_params = jax_step(d, x)
        tj = time_fn(jstep, reps)
        del jstep
        tstep, tp = torch_update_step(bench_torch, model, x), bench_torch.num_params(model)
        tt = time_fn(tstep, reps)
        tokens = batch * (prompt + new)
        rec = {
            "size": name,
            "params": n_params,
            "torch_params": tp,
            "tokens": tokens,
            "jax": tj.as_dict(),
            "torch": tt.as_dict(),
            "jax_over_torch": tt.median / tj.median,
        }
        records.append(rec)
        rows.append(
            [
                f"qwen2-{name}",
                f"{n_params / 1e6:.1f}M",
                fmt_rate(tokens / tj.median),
                fmt_spread(tj),
                fmt_rate(tokens / tt.median),
                fmt_spread(tt),
                f"{tt.median / tj.median:.2f}x",
            ]
        )
        print(f"  update {name} done", file=sys.stderr, flush=True)
    title = (
        f"Update step on Qwen2 checkpoints: {batch} seqs x {prompt + new} tokens, "
        "fwd+bwd+clip+AdamW (GRPO, float32)"
    )
    header = ["model", "params", "jax tok/s", "spread", "torch tok/s", "spread", "jax/torch"]
    return records, print_table(title, header, rows)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Command line (module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="20m,120m", help=f"comma-separated, of {sorted(SIZES)}")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--new", type=int, default=48)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="write the records as JSON here")
    args = ap.parse_args(argv)
    sizes = [s for s in args.sizes.split(",") if s]
    bad = [s for s in sizes if s not in SIZES]
    if bad:
        ap.error(f"--sizes: unknown size {bad[0]!r}; expected some of {sorted(SIZES)}")
    records, _ = run(sizes, args.batch, args.prompt, args.new, args.reps)
    if args.out is not None:
        args.out.write_text(json.dumps(records, indent=2))
    return records


if __name__ == "__main__":
    main()
