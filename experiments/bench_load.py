"""Checkpoint load time and peak host memory: cliffjax's ``load_hf`` vs transformers'
``from_pretrained`` on a Qwen2.5-0.5B-shaped checkpoint with random weights.

    python -m cliffjax.experiments.bench_load --cache ckpt/qwen2.5-0.5b-random --out bench_load.json

The checkpoint (hidden 896, 24 layers, 14 query / 2 key-value heads, SwiGLU 4864, vocabulary
151936, tied embeddings: 494M parameters, ~0.99 GB of bfloat16 safetensors) is built once with
transformers and kept under ``--cache``. Each measurement runs in a fresh subprocess that imports
its library, records its resident set, loads the checkpoint (``jax.block_until_ready`` on every
parameter / a forward-ready torch module) and reports:

* ``load_s``: wall time of the load call alone (imports excluded);
* ``rss_before_mb``: resident set after imports, before the load (``/proc/self/statm``);
* ``peak_rss_mb``: the process's peak resident set (``ru_maxrss``), which counts the
  memory-mapped pages of the safetensors file the load touched, unlike ``tracemalloc``;
* ``delta_mb`` = peak - before: what the load itself added at its peak;
* ``anon_after_mb`` / ``file_after_mb``: the resident set after the load split into private
  memory and file-backed pages (mapped safetensors still resident);
* ``peak_rss_touched_mb``: the peak after reading one element of every 4 KiB page of every
  parameter. A loader may return parameters that are still lazy views of the mapped file
  (transformers does when the file's dtype is the requested one); they become resident only
  when first read, so this is the peak a first forward pass would see.

Each loader runs ``--repeats`` times (the page cache is warm after the first build, so the
numbers are those of a file already in memory); the table shows the median. Writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

# name -> (library, dtype of the loaded parameters)
LOADERS = {
    "cliffjax load_hf bf16": ("cliffjax", "bfloat16"),
    "cliffjax load_hf f32": ("cliffjax", "float32"),
    "transformers bf16": ("transformers", "bfloat16"),
    "transformers f32": ("transformers", "float32"),
}

QWEN25_05B = dict(
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    vocab_size=151936,
    max_position_embeddings=32768,
    rope_theta=1000000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
)


def build_checkpoint(path: str, dims: dict[str, Any] = QWEN25_05B) -> str:
    """Write a random bfloat16 Qwen2 checkpoint of ``dims`` (default the 0.5B shape) to
    ``path``, unless ``path`` already holds one."""
    if os.path.isfile(os.path.join(path, "config.json")):
        return path
    import torch
    import transformers

    torch.manual_seed(0)
    cfg = transformers.Qwen2Config(**dims, dtype="bfloat16")
    torch.set_default_dtype(torch.bfloat16)  # initialise in bfloat16: half the memory
    try:
        model = transformers.Qwen2ForCausalLM(cfg)
    finally:
        torch.set_default_dtype(torch.float32)
    tmp = path + ".partial"
    model.save_pretrained(tmp)
    os.replace(tmp, path)
    return path


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _status_mb(field: str) -> float:
    """A ``kB`` field of ``/proc/self/status`` (``RssAnon``, ``RssFile``) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


_HIGH_WATER_MB = [0.0]  # the largest value _peak_mb has returned in this process


def _peak_mb() -> float:
    # ru_maxrss (KiB on Linux) is the kernel's high-water mark, updated lazily: it can trail the
    # current resident set by a few pages, so the peak is at least the current size, and at
    # least any peak seen before (the resident set may shrink while ru_maxrss still trails).
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, _rss_mb())
    _HIGH_WATER_MB[0] = max(_HIGH_WATER_MB[0], peak)
    return _HIGH_WATER_MB[0]


def _worker(library: str, dtype: str, path: str) -> dict[str, float]:
    """Load once in this process and return the measurements."""
    if library == "cliffjax":
        import jax
        import numpy as np

        from cliffjax.models.llama import load_hf

        before = _rss_mb()
        t0 = time.perf_counter()
        policy = load_hf(path, dtype=dtype)
        jax.block_until_ready(policy.params)
        load_s = time.perf_counter() - t0
        leaves = jax.tree.leaves(policy.params)
        peak, anon, file = _peak_mb(), _status_mb("RssAnon"), _status_mb("RssFile")
        for x in leaves:  # read one element of every 4 KiB page (already private memory)
            np.asarray(x).reshape(-1)[:: 4096 // x.dtype.itemsize].astype(np.float32).sum()
        n_params = sum(x.size for x in leaves)
    else:
        import torch
        import transformers

        before = _rss_mb()
        t0 = time.perf_counter()
        model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
        load_s = time.perf_counter() - t0
        peak, anon, file = _peak_mb(), _status_mb("RssAnon"), _status_mb("RssFile")
        with torch.no_grad():  # parameters may still be lazy views of the mapped file
            for p in model.parameters():
                p.reshape(-1)[:: 4096 // p.element_size()].float().sum()
        n_params = sum(p.numel() for p in model.parameters())
    return {
        "load_s": load_s,
        "rss_before_mb": before,
        "peak_rss_mb": peak,
        "delta_mb": peak - before,
        "anon_after_mb": anon,
        "file_after_mb": file,
        "peak_rss_touched_mb": _peak_mb(),
        "n_params": int(n_params),
    }


def measure(name: str, path: str) -> dict[str, float]:
    """One measurement of loader ``name`` in a fresh subprocess."""
    library, dtype = LOADERS[name]
    cmd = [sys.executable, "-m", "cliffjax.experiments.bench_load", "--worker", library, dtype]
    out = subprocess.run([*cmd, "--cache", path], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True, help="checkpoint directory (built if absent)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--loaders", nargs="+", default=list(LOADERS), choices=list(LOADERS))
    parser.add_argument("--out", default="bench_load.json")
    parser.add_argument("--worker", nargs=2, metavar=("LIBRARY", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(*args.worker, args.cache)))
        return
    t0 = time.perf_counter()
    path = build_checkpoint(args.cache)
    build_s = time.perf_counter() - t0
    size = sum(
        os.path.getsize(os.path.join(path, f))
        for f in os.listdir(path)
        if f.endswith(".safetensors")
    )
    results: dict[str, list[dict[str, float]]] = {}
    for name in args.loaders:
        results[name] = [measure(name, path) for _ in range(args.repeats)]
    med = {
        name: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        for name, runs in results.items()
    }
    print(f"checkpoint: {size / 2**30:.2f} GiB of safetensors ({build_s:.1f} s to build/find)")
    print(
        f"{'loader':<24}{'load s':>9}{'before MB':>11}{'peak MB':>10}{'delta MB':>10}"
        f"{'anon MB':>9}{'file MB':>9}{'touched MB':>12}"
    )
    for name, m in med.items():
        print(
            f"{name:<24}{m['load_s']:>9.2f}{m['rss_before_mb']:>11.0f}"
            f"{m['peak_rss_mb']:>10.0f}{m['delta_mb']:>10.0f}"
            f"{m['anon_after_mb']:>9.0f}{m['file_after_mb']:>9.0f}"
            f"{m['peak_rss_touched_mb']:>12.0f}"
        )
    with open(args.out, "w") as f:
        json.dump(
            {
                "checkpoint": {"config": QWEN25_05B, "safetensors_bytes": size},
                "repeats": args.repeats,
                "median": med,
                "runs": results,
            },
            f,
            indent=2,
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
