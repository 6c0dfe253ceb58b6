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

import jax
import jax.numpy as jnp
import numpy as np

from cliffjax.experiments.bench import fmt_rate, fmt_spread, lower_compile, print_table, time_fn

# name -> (hidden, intermediate, layers, heads, kv heads, vocab)
SIZES: dict[str, tuple[int, int, int, int, int, int]] = {
    "20m": (384, 1024, 6, 6, 2, 16000),
    "120m": (768, 2048, 12, 12, 2, 32000),
    "tiny": (32, 64, 1, 4, 2, 256),  # the smoke test's
}


def _batch(rng: np.random.Generator, b: int, p: int, n: int, vocab: int) -> dict[str, np.ndarray]:
    lengths = rng.integers(max(1, n // 2), n + 1, size=b)
    logp_old = (-np.abs(rng.normal(2.5, 0.5, size=(b, n)))).astype(np.float32)
    return dict(
        prompts=rng.integers(3, vocab, size=(b, p)).astype(np.int32),
        completions=rng.integers(3, vocab, size=(b, n)).astype(np.int32),
        mask=(np.arange(n)[None, :] < lengths[:, None]).astype(np.float32),
        logp_old=logp_old,
        logp_ref=(logp_old + 0.05 * rng.normal(size=(b, n))).astype(np.float32),
        adv=rng.normal(size=b).astype(np.float32),
    )


def jax_step(ckpt: str, x: dict[str, np.ndarray]):
    """``(step(), n_params)``: the project's update phase on the loaded checkpoint."""
    from cliffjax.models.llama import load_hf
    from cliffjax.models.policy import param_count
    from cliffjax.objectives import get_objective
    from cliffjax.tasks.registry import get_task
    from cliffjax.training.config import RLConfig
    from cliffjax.training.program import RLProgram
    from cliffjax.training.rollout import Rollout
    from cliffjax.training.state import init_state
    from cliffjax.training.update import make_update_phase

    pol = load_hf(ckpt)
    spec = get_objective("grpo")
    b = x["prompts"].shape[0]
    rl = RLConfig(steps=1000, prompts_per_step=b, group_size=1, epochs=1, minibatches=1)
    # The task only sizes the program (fixed-width prompts); the batch is synthetic.
    program = RLProgram(pol.graphdef, get_task("addition"), spec, spec.default_config, rl)
    batch = Rollout(
        jnp.asarray(x["prompts"]),
        jnp.asarray(x["completions"]),
        jnp.asarray(x["mask"]),
        jnp.asarray(x["logp_old"]),
        jnp.asarray(x["logp_ref"]),
        jnp.asarray(x["adv"]),
        jnp.zeros((b,), jnp.float32),
    )
    holder = {"state": init_state(pol.params, program.optimizer(), jax.random.key(1))}
    compiled = lower_compile(make_update_phase(program), holder["state"], batch)

    def step():
        holder["state"], metrics = compiled(holder["state"], batch)
        jax.block_until_ready((holder["state"], metrics))

    return step, param_count(pol.params)


def torch_step(model: Any, x: dict[str, np.ndarray]):
    """``(step(), n_params)``: the same update in PyTorch (``bench_torch.make_update_step``)."""
    import torch

    from cliffjax.experiments import bench_torch as bt
    from cliffjax.objectives import get_objective

    spec = get_objective("grpo")
    p = x["prompts"].shape[1]
    step = bt.make_update_step(model, p, "grpo", spec.default_config)
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

    return run, bt.num_params(model)


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
        x = _batch(np.random.default_rng(0), batch, prompt, new, vocab)
        with tempfile.TemporaryDirectory() as d:
            model.save_pretrained(d)
            jstep, n_params = jax_step(d, x)
        tj = time_fn(jstep, reps)
        del jstep
        tstep, tp = torch_step(model, x)
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
