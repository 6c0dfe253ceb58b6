"""Check that a mesh computes what one device computes: loss, gradients, optimizer steps,
sampled tokens. Used by the tests (8 simulated CPU devices) and by hand on a real node::

    python -m cliffjax.distributed.selfcheck                       # the four 8-device meshes
    python -m cliffjax.distributed.selfcheck --meshes 2x4x1,1x1x8 --cpu-devices 8

The problem: the repo's transformer (``cliffjax.models``) with 8 heads, a GRPO loss
(``cliffjax.objectives``, arXiv:2402.03300 Eq. 3) on per-token log-probs from
``cliffjax.sampling.score``, AdamW with global-norm clipping, and KV-cache sampling
(``cliffjax.sampling.sample``). The one-device reference runs the *same* code on a 1x1x1 mesh of
the first device, so any difference comes from the sharding (reduction order, collectives).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any, NamedTuple

PyTree = Any


class CheckState(NamedTuple):
    """Train state of the check (the trainer's ``TrainState`` has the same fields)."""

    params: PyTree
    opt_state: PyTree
    step: Any
    key: Any


@dataclasses.dataclass(frozen=True)
class Problem:
    """Host-side (numpy) inputs shared by every mesh.

    Attributes:
      graphdef: the model structure.
      params: initial parameters (``nnx.State`` of numpy arrays).
      batches: ``steps`` GRPO batches, dict of ``[steps, B, ...]`` numpy arrays.
      prompts: ``[B, P]`` int32 prompts for sampling.
      sample_key: PRNG key data for sampling (same on every mesh).
      steps: optimizer steps of the short training run.
      lr: AdamW learning rate (large enough that parameters move visibly).
      max_new_tokens: completion length sampled.
    """

    graphdef: Any
    params: PyTree
    batches: dict
    prompts: Any
    sample_key: Any
    steps: int
    lr: float
    max_new_tokens: int


@dataclasses.dataclass
class MeshResult:
    """What one mesh computed (host copies) and its final on-device state."""

    name: str
    loss: float
    grads: PyTree
    params_step1: PyTree
    params_final: PyTree
    losses: list
    samples: PyTree
    state: CheckState
    opt_shardings: Any
    layout: Any


def _model_config(vocab: int = 20):
    from cliffjax.models import preset_config

    # 8 heads so that 8-way tensor parallelism really splits attention; vocabulary 20 is not
    # divisible by 8, which exercises the replicate-on-indivisible fallback on 1x1x8.
    return preset_config("tiny", vocab_size=vocab, max_seq_len=32, n_heads=8, d_model=32)


def make_optimizer(lr: float):
    """AdamW with global-norm clipping, like the trainer's default."""
    import optax

    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(lr, weight_decay=0.01))


def make_problem(
    seed: int = 0, batch: int = 8, steps: int = 3, lr: float = 1e-3, max_new_tokens: int = 6
) -> Problem:
    """Random model and data on the host (runs on the default device, unsharded)."""
    import jax
    import numpy as np

    from cliffjax.models import make_policy

    cfg = _model_config()
    policy = make_policy(cfg, seed)
    params = jax.tree.map(np.asarray, policy.params)
    rng = np.random.default_rng(seed)
    p_len, n = 5, 6
    prompts = rng.integers(2, cfg.vocab_size, (steps, batch, p_len)).astype(np.int32)
    completions = rng.integers(0, cfg.vocab_size, (steps, batch, n)).astype(np.int32)
    lengths = rng.integers(1, n + 1, (steps, batch))
    mask = (np.arange(n)[None, None, :] < lengths[..., None]).astype(np.float32)
    rewards = rng.integers(0, 2, (steps, batch)).astype(np.float32)
    adv = (rewards - rewards.mean(-1, keepdims=True)) / (rewards.std(-1, keepdims=True) + 1e-4)
    # Old and reference log-probs near the initial policy's (about -log V per token) but not
    # equal to it, so ratios differ from 1, some clip, and the KL term is non-zero.
    base = -np.log(cfg.vocab_size)
    logp_old = (base + 0.3 * rng.standard_normal((steps, batch, n))).astype(np.float32)
    logp_ref = (base + 0.3 * rng.standard_normal((steps, batch, n))).astype(np.float32)
    batches = {
        "prompts": prompts,
        "completions": completions,
        "mask": mask,
        "logp_old": logp_old,
        "logp_ref": logp_ref,
        "advantages": adv.astype(np.float32),
    }
    sample_prompts = rng.integers(2, cfg.vocab_size, (batch, p_len)).astype(np.int32)
    sample_key = np.asarray(jax.random.key_data(jax.random.key(seed + 1)))
    return Problem(
        graphdef=policy.graphdef,
        params=params,
        batches=batches,
        prompts=sample_prompts,
        sample_key=sample_key,
        steps=steps,
        lr=lr,
        max_new_tokens=max_new_tokens,
    )


def grpo_loss(graphdef, params, batch) -> Any:
    """GRPO loss with its KL term (``cliffjax.objectives`` "grpo", paper defaults)."""
    from cliffjax.objectives import PolicyBatch, get_objective
    from cliffjax.sampling import score

    spec = get_objective("grpo")
    logp = score(graphdef, params, batch["prompts"], batch["completions"])
    pb = PolicyBatch(
        logp=logp,
        logp_old=batch["logp_old"],
        mask=batch["mask"],
        advantages=batch["advantages"],
        logp_ref=batch["logp_ref"],
    )
    loss_sum, denom, _ = spec.loss(pb, spec.default_config)
    return loss_sum / denom


def run_on_mesh(problem: Problem, mesh, name: str = "", rules: str = "transformer") -> MeshResult:
    """Loss, gradients, ``problem.steps`` optimizer steps and one sampled batch on ``mesh``.

    Compiled through ``Layout.jit`` (what the trainer uses): the optimizer init, the sampler
    and the train step (whose first call also gives the loss and gradients at the initial
    parameters).
    """
    import jax
    import jax.numpy as jnp
    import optax

    from cliffjax.distributed.layout import Layout
    from cliffjax.sampling import SamplingConfig, sample

    graphdef = problem.graphdef
    tx = make_optimizer(problem.lr)
    layout = Layout(mesh, rules)
    # The optimizer-aware shardings (optax.tree_utils.tree_map_params) cross-check the
    # layout's path-rule shardings of the optimizer state.
    opt_shardings = layout.opt_state_shardings(tx, problem.params)
    params = layout.place(problem.params)

    scfg = SamplingConfig(max_new_tokens=problem.max_new_tokens, temperature=1.0, eos_id=1)
    sampler = layout.jit(
        lambda p, prompts, key: sample(graphdef, p, prompts, key, scfg),
        in_kinds=("model", "batch", "replicated"),
        out_kinds="batch",
    )
    key = jax.random.wrap_key_data(jnp.asarray(problem.sample_key))
    samples = jax.device_get(sampler(params, problem.prompts, key))

    def train_step(state: CheckState, batch):
        loss, grads = jax.value_and_grad(lambda p: grpo_loss(graphdef, p, batch))(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new = CheckState(params, opt_state, state.step + 1, state.key)
        # Gradients come back (replicated) only so the check can compare them; a real step
        # returns scalars.
        return new, {"loss": loss, "grads": grads}

    init = layout.jit(tx.init, in_kinds=("model",), out_kinds="model")
    state = CheckState(
        params=params,
        opt_state=init(params),
        step=jnp.zeros((), jnp.int32),
        key=jax.random.key_data(jax.random.key(0)),
    )
    # Place every leaf (step and key too) on the mesh before the first step: an uncommitted
    # scalar has a different abstract type than the step's output, which would compile the
    # step twice.
    state = layout.place(state)
    step = layout.jit(
        train_step,
        in_kinds=("model", "batch"),
        out_kinds=("model", "replicated"),
        donate_argnums=(0,),
    )
    losses, params_step1, grads = [], None, None
    for i in range(problem.steps):
        state, metrics = step(state, jax.tree.map(lambda x, i=i: x[i], problem.batches))
        losses.append(float(metrics["loss"]))
        if i == 0:
            grads = jax.device_get(metrics["grads"])
            params_step1 = jax.device_get(state.params)
    return MeshResult(
        name=name or "x".join(str(s) for s in mesh.shape.values()),
        loss=losses[0],
        grads=grads,
        params_step1=params_step1,
        params_final=jax.device_get(state.params),
        losses=losses,
        samples=samples,
        state=state,
        opt_shardings=opt_shardings,
        layout=layout,
    )


def max_abs_diff(a: PyTree, b: PyTree) -> float:
    """Largest ``|a - b|`` over all leaves of two trees of the same structure."""
    import jax
    import numpy as np

    diffs = jax.tree.map(
        lambda x, y: (
            float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
            if np.size(x)
            else 0.0
        ),
        a,
        b,
    )
    return max(jax.tree.leaves(diffs), default=0.0)


def compare(ref: MeshResult, res: MeshResult) -> dict[str, float]:
    """Max abs differences of ``res`` from the one-device ``ref``."""
    import numpy as np

    return {
        "loss": abs(res.loss - ref.loss),
        "grads": max_abs_diff(res.grads, ref.grads),
        "params_1_step": max_abs_diff(res.params_step1, ref.params_step1),
        "params_n_steps": max_abs_diff(res.params_final, ref.params_final),
        "train_losses": max_abs_diff(res.losses, ref.losses),
        "sample_logp": max_abs_diff(res.samples.logp, ref.samples.logp),
        "sample_tokens_differ": float(
            np.sum(np.asarray(res.samples.completion) != np.asarray(ref.samples.completion))
        ),
    }


def parse_mesh(text: str):
    """``"2x2x2"`` -> ``MeshConfig(data=2, fsdp=2, tensor=2)``."""
    from cliffjax.distributed.mesh import MeshConfig

    parts = [int(p) for p in text.lower().split("x")]
    if len(parts) != 3:
        raise ValueError(f"mesh {text!r}: expected DATAxFSDPxTENSOR, e.g. 2x2x2")
    return MeshConfig(data=parts[0], fsdp=parts[1], tensor=parts[2])


def print_memory_table(preset: str, vocab: int, meshes: list[str]) -> None:
    """Markdown table: fp32 params + Adam (12 B/param) and + gradients (16 B/param) per
    device for each mesh, from shapes and the partition rules only."""
    import jax

    from cliffjax.distributed.partition import bytes_per_device
    from cliffjax.models import make_policy, param_count, preset_config

    cfg = preset_config(preset, vocab_size=vocab)
    params = jax.eval_shape(lambda: make_policy(cfg, 0).params)
    n = param_count(params)
    gib = 2**30
    print(f"{preset}, vocabulary {vocab}: {n:,} parameters")
    print(
        "| mesh (data x fsdp x tensor) | devices | params + Adam, GiB/device | "
        "+ gradients, GiB/device | bytes/param/device |"
    )
    print("|---|---|---|---|---|")
    for text in meshes:
        mc = parse_mesh(text)
        shape = {"data": mc.data, "fsdp": mc.fsdp, "tensor": mc.tensor}
        b3 = bytes_per_device(params, shape, mc.rules, copies=3)
        b4 = bytes_per_device(params, shape, mc.rules, copies=4)
        devices = mc.data * mc.fsdp * mc.tensor
        print(f"| {text} | {devices} | {b3 / gib:.3f} | {b4 / gib:.3f} | {b3 / n:.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meshes", default="8x1x1,2x4x1,2x2x2,1x1x8")
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=0,
        help="simulate this many CPU devices (set before jax starts); 0 = use real devices",
    )
    parser.add_argument(
        "--memory",
        default="",
        metavar="PRESET",
        help="instead of the check, print params+Adam bytes per device of a model preset "
        "(e.g. base100m) for each mesh; needs no devices",
    )
    parser.add_argument("--vocab", type=int, default=20, help="vocabulary size for --memory")
    args = parser.parse_args(argv)
    if args.memory:
        print_memory_table(args.memory, args.vocab, args.meshes.split(","))
        return 0
    if args.cpu_devices:
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + f" --xla_force_host_platform_device_count={args.cpu_devices}"
        )
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    from cliffjax.distributed.mesh import MeshConfig, make_mesh

    problem = make_problem()
    ref = run_on_mesh(problem, make_mesh(MeshConfig(), jax.devices()[:1]), "1x1x1")
    print(f"devices: {jax.device_count()} x {jax.devices()[0].platform}")
    print(f"one-device loss {ref.loss:.6f}, train losses {[round(x, 6) for x in ref.losses]}")
    header = None
    for text in args.meshes.split(","):
        cfg = parse_mesh(text)
        n = abs(cfg.data * cfg.fsdp * cfg.tensor)
        res = run_on_mesh(problem, make_mesh(cfg, jax.devices()[:n]), text)
        diffs = compare(ref, res)
        if header is None:
            header = "mesh     " + " ".join(f"{k:>20}" for k in diffs)
            print(header)
        print(f"{text:<8} " + " ".join(f"{v:>20.3g}" for v in diffs.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
