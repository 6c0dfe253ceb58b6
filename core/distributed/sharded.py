"""The optimizer-aware sharding plan and abstract restore targets.

``plan_shardings`` computes, without moving data, the parameter shardings from the partition
rules and the optimizer-state shardings by mirroring them with
``optax.tree_utils.tree_map_params`` (counters replicated); ``plan.summary()`` is the
"what is sharded" table of a run. ``init_opt_state`` builds the optimizer state directly in
those shardings. ``abstract_on_mesh`` makes the orbax restore target for another mesh.

Compiling steps is ``Layout``'s job (``core/distributed/layout.py``); ``Layout.model`` and
this plan give the same shardings (tested).

    plan = plan_shardings(mesh, params, optimizer, rules=cfg.mesh.rules)
    params = jax.device_put(params, plan.params)
    opt_state = init_opt_state(optimizer, params, plan)        # sharded like params
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from cliffjax.distributed.mesh import BATCH_AXES, replicated
from cliffjax.distributed.partition import (
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
