"""Put a run on a mesh: shardings for parameters, optimizer state, train state and batches;
jit'd steps with explicit in/out shardings; abstract targets for cross-mesh restores.

Typical use (the trainer does this once, after building params and optimizer)::

    mesh = make_mesh(cfg.mesh)
    plan = plan_shardings(mesh, params, optimizer, rules=cfg.mesh.rules)
    params = jax.device_put(params, plan.params)
    opt_state = init_opt_state(optimizer, params, plan)        # sharded like params
    state = TrainState(params, opt_state, step, key)
    state_sh = train_state_shardings(state, plan)
    step = jit_train_step(train_step, state_sh, plan)          # donates the state
    state, metrics = step(state, batch)

On a one-device mesh all of this reduces to plain ``jax.jit``; the numbers are the same up to
float32 reduction order (measured differences in docs/scaling.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from core.distributed.mesh import BATCH_AXES, batch_shardings, replicated
from core.distributed.partition import (
    Rule,
    SpecDecision,
    opt_state_shardings,
    partition_specs,
    to_shardings,
    unmatched,
)

PyTree = Any


@dataclasses.dataclass(frozen=True)
class ShardingPlan:
    """Where every part of a run lives on the mesh.

    Attributes:
      mesh: the ``(data, fsdp, tensor)`` mesh.
      params: ``NamedSharding`` tree with the structure of the parameters.
      opt_state: ``NamedSharding`` tree with the structure of the optimizer state.
      decisions: one ``SpecDecision`` per parameter (rule matched, axes dropped).
    """

    mesh: Mesh
    params: PyTree
    opt_state: PyTree
    decisions: tuple[SpecDecision, ...]

    @property
    def replicated(self) -> NamedSharding:
        """Sharding for scalars, keys and counters."""
        return replicated(self.mesh)

    @property
    def batch(self) -> NamedSharding:
        """Sharding prefix for any batch pytree whose leaves have a leading batch dim."""
        return NamedSharding(self.mesh, PartitionSpec(BATCH_AXES))

    @property
    def unmatched(self) -> list[str]:
        """Parameter paths no rule matched (replicated)."""
        return unmatched(self.decisions)

    def summary(self) -> str:
        """Human-readable table: path, shape, spec, rule (for the run log)."""
        lines = [f"mesh {dict(self.mesh.shape)}"]
        for d in self.decisions:
            note = f" (dropped {','.join(d.dropped)}: not divisible)" if d.dropped else ""
            rule = d.rule if d.rule is not None else "<no rule: replicated>"
            lines.append(f"  {d.path:<44} {d.shape!s:<16} {d.spec!s:<26} {rule}{note}")
        return "\n".join(lines)


def plan_shardings(
    mesh: Mesh,
    params: PyTree,
    optimizer: optax.GradientTransformation | None = None,
    rules: Sequence[Rule] | str = "transformer",
) -> ShardingPlan:
    """Compute parameter and optimizer-state shardings (no data moves).

    Args:
      mesh: the mesh (``make_mesh``).
      params: parameter pytree (arrays or ``jax.ShapeDtypeStruct``).
      optimizer: the optax transformation whose state must mirror the parameters; ``None``
        for inference-only use (``plan.opt_state`` is then ``None``).
      rules: a rule-set name from ``PARTITION_RULES`` or a sequence of ``Rule``.
    """
    specs, decisions = partition_specs(params, mesh, rules)
    p_sh = to_shardings(mesh, specs)
    o_sh = None if optimizer is None else opt_state_shardings(optimizer, params, p_sh, mesh)
    return ShardingPlan(mesh=mesh, params=p_sh, opt_state=o_sh, decisions=tuple(decisions))


def init_opt_state(optimizer: optax.GradientTransformation, params: PyTree, plan: ShardingPlan):
    """``optimizer.init(params)`` compiled with output shardings mirroring the parameters.

    Without ``out_shardings`` the zeros of Adam's moments come out replicated on every device
    (they do not depend on the sharded input), which defeats FSDP's memory saving.
    """
    return jax.jit(optimizer.init, in_shardings=(plan.params,), out_shardings=plan.opt_state)(
        params
    )


def _replace_fields(state: Any, **fields: Any) -> Any:
    if hasattr(state, "_replace"):  # NamedTuple
        return state._replace(**fields)
    if hasattr(state, "replace"):  # flax.struct / chex dataclasses
        return state.replace(**fields)
    return dataclasses.replace(state, **fields)


def train_state_shardings(state: Any, plan: ShardingPlan) -> Any:
    """Shardings for a train-state pytree with ``params`` and ``opt_state`` fields: those two
    follow the plan, every other leaf (step, PRNG key, ...) is replicated.

    Works for NamedTuples, ``flax.struct`` dataclasses and frozen dataclasses registered as
    pytrees. ``state`` may hold arrays or ``ShapeDtypeStruct``.
    """
    rep = plan.replicated
    shardings = jax.tree.map(lambda _: rep, state)
    fields: dict[str, Any] = {"params": plan.params}
    if hasattr(state, "opt_state"):
        if plan.opt_state is None:
            raise ValueError("plan has no optimizer shardings: pass optimizer to plan_shardings")
        fields["opt_state"] = plan.opt_state
    return _replace_fields(shardings, **fields)


def shard_train_state(state: Any, plan: ShardingPlan) -> tuple[Any, Any]:
    """Place an existing (e.g. single-device or freshly built) train state on the mesh.

    Returns ``(sharded_state, state_shardings)``. Do not reuse ``state``'s arrays after a
    donated step on the result: a replicated leaf may alias the original buffer.
    """
    shardings = train_state_shardings(state, plan)
    return jax.device_put(state, shardings), shardings


def shard_batch(batch: PyTree, mesh: Mesh) -> PyTree:
    """``device_put`` a host batch with its rows split over ``data`` x ``fsdp`` (single
    process; on several processes use ``multihost.host_local_to_global``)."""
    return jax.device_put(batch, batch_shardings(mesh, batch))


def jit_train_step(
    step_fn: Callable[..., tuple[Any, Any]],
    state_shardings: Any,
    plan: ShardingPlan,
    num_batch_args: int = 1,
    donate: bool = True,
) -> Callable[..., tuple[Any, Any]]:
    """Compile ``step_fn(state, *batch_args) -> (state, metrics)`` for the mesh.

    The state keeps its shardings (``in == out``, so it stays on the mesh between steps with
    no host round trip), each of the ``num_batch_args`` batch arguments (arrays or pytrees of
    arrays with a leading batch dimension) is split over ``data`` x ``fsdp``, and the
    metrics come back replicated. The old state's buffers are donated: the parameter and
    optimizer update happens in place.
    """
    return jax.jit(
        step_fn,
        in_shardings=(state_shardings, *([plan.batch] * num_batch_args)),
        out_shardings=(state_shardings, plan.replicated),
        donate_argnums=(0,) if donate else (),
    )


def jit_sample(
    sample_fn: Callable[[PyTree, Any, Any], Any], plan: ShardingPlan
) -> Callable[[PyTree, Any, Any], Any]:
    """Compile ``sample_fn(params, prompts[B, P], key) -> outputs`` for the mesh.

    Parameters follow the plan, prompts and every output leaf are split by rows over
    ``data`` x ``fsdp``, the key is replicated. Random draws do not depend on the sharding
    (``jax_threefry_partitionable``, on by default), so the same key gives the same tokens on
    every mesh. Typical ``sample_fn``:
    ``lambda params, prompts, key: sample(graphdef, params, prompts, key, cfg)``.
    """
    return jax.jit(
        sample_fn,
        in_shardings=(plan.params, plan.batch, plan.replicated),
        out_shardings=plan.batch,
    )


def jit_score(
    score_fn: Callable[[PyTree, Any, Any], Any], plan: ShardingPlan
) -> Callable[[PyTree, Any, Any], Any]:
    """Compile ``score_fn(params, prompts[B, P], completions[B, N]) -> logp[B, N]`` (or a
    tuple of ``[B, ...]`` arrays) for the mesh: rows split over ``data`` x ``fsdp``."""
    return jax.jit(
        score_fn,
        in_shardings=(plan.params, plan.batch, plan.batch),
        out_shardings=plan.batch,
    )


def jit_with_shardings(
    fn: Callable[..., Any],
    in_shardings: Any,
    out_shardings: Any,
    donate_argnums: Sequence[int] = (),
) -> Callable[..., Any]:
    """``jax.jit`` with explicit shardings: the one place sharded programs are compiled."""
    return jax.jit(
        fn,
        in_shardings=in_shardings,
        out_shardings=out_shardings,
        donate_argnums=tuple(donate_argnums),
    )


def abstract_on_mesh(tree: PyTree, shardings: PyTree) -> PyTree:
    """``jax.ShapeDtypeStruct`` tree carrying concrete ``NamedSharding`` s, the restore target
    orbax needs to place (and reshard) a checkpoint onto a new mesh.

    ``tree`` may hold arrays or ``ShapeDtypeStruct``; ``shardings`` has its structure. (A
    target from ``nnx.eval_shape`` under ``jax.set_mesh`` carries an ``AbstractMesh``, which
    orbax rejects; this rebuilds it with the concrete mesh.)
    """
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings
    )


def gather_to_host(tree: PyTree) -> PyTree:
    """Fully-addressable host (numpy) copy of a sharded tree, for comparisons and export.

    Only for single-process runs or fully replicated values: on several processes a sharded
    array is not addressable from one host (use orbax to save it instead).
    """
    return jax.tree.map(lambda x: jax.device_get(x), tree)


__all__ = [
    "ShardingPlan",
    "abstract_on_mesh",
    "gather_to_host",
    "init_opt_state",
    "jit_sample",
    "jit_score",
    "jit_train_step",
    "jit_with_shardings",
    "plan_shardings",
    "shard_batch",
    "shard_train_state",
    "train_state_shardings",
]
