"""Greedy decoding speed: cliffjax's sampler vs transformers ``generate`` on a random
Qwen2-architecture model (~22M parameters, float32, CPU or whatever JAX/torch find).

    python -m cliffjax.experiments.bench_llama --out bench_llama.json

Each timing is the median of ``--repeats`` runs after one warm-up run (the warm-up includes
the sampler's compile, reported separately). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--prompt-len", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="bench_llama.json")
    args = parser.parse_args()

    import torch
    import transformers

    from cliffjax.models.llama import load_hf
    from cliffjax.models.policy import param_count
    from cliffjax.sampling.sampler import SamplingConfig, sample

    torch.manual_seed(0)
    cfg = transformers.Qwen2Config(
        hidden_size=384,
        intermediate_size=1024,
        num_hidden_layers=6,
        num_attention_heads=6,
        num_key_value_heads=2,
        vocab_size=16000,
        max_position_embeddings=512,
        initializer_range=0.1,
    )
    model = transformers.Qwen2ForCausalLM(cfg).eval()
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        pol = load_hf(d)
    prompts = np.random.RandomState(0).randint(0, cfg.vocab_size, (args.batch, args.prompt_len))
    rows = []
    for n in args.new_tokens:
        scfg = SamplingConfig(max_new_tokens=n, temperature=0.0, eos_id=0, pad_id=0)

        def ours(scfg=scfg):
            out = sample(pol.graphdef, pol.params, jnp.asarray(prompts), jax.random.key(0), scfg)
            return jax.block_until_ready(out.completion)

        def theirs(n=n):
            with torch.no_grad():
                return model.generate(
                    torch.tensor(prompts),
                    attention_mask=torch.ones(prompts.shape, dtype=torch.long),
                    max_new_tokens=n,
                    min_new_tokens=n,
                    do_sample=False,
                    eos_token_id=None,
                    pad_token_id=0,
                )

        t0 = time.perf_counter()
        ours()
        first = time.perf_counter() - t0
        theirs()
        t_ours = _median_time(ours, args.repeats)
        t_theirs = _median_time(theirs, args.repeats)
        rows.append(
            dict(
                new_tokens=n,
                cliffjax_s=t_ours,
                cliffjax_first_call_s=first,
                transformers_s=t_theirs,
                speedup=t_theirs / t_ours,
                cliffjax_tok_per_s=args.batch * n / t_ours,
                transformers_tok_per_s=args.batch * n / t_theirs,
            )
        )
    result = dict(
        params=param_count(pol.params),
        batch=args.batch,
        prompt_len=args.prompt_len,
        jax_backend=jax.default_backend(),
        torch_threads=torch.get_num_threads(),
        rows=rows,
    )
    print(
        f"Qwen2-arch random model, {result['params'] / 1e6:.1f}M params, batch {args.batch}, "
        f"prompt {args.prompt_len}, greedy, backend {result['jax_backend']}"
    )
    print(f"{'new':>5} {'cliffjax s':>11} {'(1st call)':>11} {'hf s':>8} {'hf/cliffjax':>12}")
    for r in rows:
        print(
            f"{r['new_tokens']:>5} {r['cliffjax_s']:>11.3f} {r['cliffjax_first_call_s']:>11.2f} "
            f"{r['transformers_s']:>8.3f} {r['speedup']:>12.2f}"
        )
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
