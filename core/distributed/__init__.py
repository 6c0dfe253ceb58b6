"""Scale out: device mesh, partition rules, sharded steps, multi-host start-up.

A run changes scale by changing ``MeshConfig`` (``mesh=...`` on the command line), never the
code. See docs/scaling.md.
"""

from cliffjax.distributed.layout import KINDS, Layout, jit_maybe_sharded, sharded_partial
from cliffjax.distributed.mesh import (
    AXES,
    BATCH_AXES,
    MeshConfig,
    batch_sharding,
    batch_shardings,
    batch_spec,
    constrain_rows,
    make_mesh,
    replicated,
)
from cliffjax.distributed.multihost import (
    detect_launch,
    host_local_to_global,
    is_main_process,
    maybe_initialize_distributed,
    process_batch_slice,
)
from cliffjax.distributed.partition import (
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

__all__ = [
    "AXES",
    "BATCH_AXES",
    "KINDS",
    "PARTITION_RULES",
    "TRANSFORMER_RULES",
    "Layout",
    "MeshConfig",
    "Rule",
    "SpecDecision",
    "batch_sharding",
    "batch_shardings",
    "batch_spec",
    "constrain_rows",
    "describe",
    "detect_launch",
    "host_local_to_global",
    "is_main_process",
    "jit_maybe_sharded",
    "make_mesh",
    "maybe_initialize_distributed",
    "opt_state_shardings",
    "param_shardings",
    "partition_specs",
    "path_str",
    "process_batch_slice",
    "replicated",
    "sharded_partial",
    "spec_for",
    "to_shardings",
    "tree_specs",
    "unmatched",
]
