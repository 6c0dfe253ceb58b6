"""Scale out: device mesh, partition rules, sharded steps, multi-host start-up.

A run changes scale by changing ``MeshConfig`` (``mesh=...`` on the command line), never the
code. See docs/scaling.md.
"""

from core.distributed.mesh import (
    AXES,
    BATCH_AXES,
    MeshConfig,
    batch_sharding,
    batch_shardings,
    batch_spec,
    make_mesh,
    replicated,
)
from core.distributed.multihost import (
    detect_launch,
    host_local_to_global,
    is_main_process,
    maybe_initialize_distributed,
    process_batch_slice,
)
from core.distributed.partition import (
    PARTITION_RULES,
    TRANSFORMER_RULES,
    Rule,
    SpecDecision,
    describe,
    opt_state_shardings,
    param_shardings,
    partition_specs,
    path_str,
    spec_for,
    to_shardings,
    tree_specs,
    unmatched,
)
from core.distributed.sharded import (
    ShardingPlan,
    abstract_on_mesh,
    gather_to_host,
    init_opt_state,
    jit_train_step,
    jit_with_shardings,
    plan_shardings,
    shard_batch,
    shard_train_state,
    train_state_shardings,
)

__all__ = [
    "AXES",
    "BATCH_AXES",
    "PARTITION_RULES",
    "TRANSFORMER_RULES",
    "MeshConfig",
    "Rule",
    "ShardingPlan",
    "SpecDecision",
    "abstract_on_mesh",
    "batch_sharding",
    "batch_shardings",
    "batch_spec",
    "describe",
    "detect_launch",
    "gather_to_host",
    "host_local_to_global",
    "init_opt_state",
    "is_main_process",
    "jit_train_step",
    "jit_with_shardings",
    "make_mesh",
    "maybe_initialize_distributed",
    "opt_state_shardings",
    "param_shardings",
    "partition_specs",
    "path_str",
    "plan_shardings",
    "process_batch_slice",
    "replicated",
    "shard_batch",
    "shard_train_state",
    "spec_for",
    "to_shardings",
    "train_state_shardings",
    "tree_specs",
    "unmatched",
]
