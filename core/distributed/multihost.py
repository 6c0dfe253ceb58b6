"""Several processes (hosts): start-up, "am I process 0", per-host data.

JAX runs one process per host (per GPU node, or per TPU VM); all processes run the same
program and together own the global mesh. ``jax.distributed.initialize()`` must be called in
each process before any other JAX call that touches devices; it finds the coordinator from
the environment on SLURM (under ``srun``), Cloud TPU pods, Open MPI and Kubernetes.

Environment read by ``detect_launch``:

* SLURM: ``SLURM_JOB_ID`` and ``SLURM_NTASKS`` > 1 (one task per node or per GPU), with the
  step variables ``srun`` sets (``SLURM_PROCID``, ``SLURM_STEP_NODELIST``, ...).
* Cloud TPU: ``TPU_WORKER_HOSTNAMES`` with more than one host (or ``MEGASCALE_NUM_SLICES``
  > 1 for multislice).
* Manual: ``MeshConfig.coordinator_address`` / ``num_processes`` / ``process_id``.

Every process computes and steps; only process 0 writes logs, metrics and reports (orbax
coordinates checkpoint writes across processes itself).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from cliffjax.distributed.mesh import MeshConfig, batch_sharding

log = logging.getLogger(__name__)

PyTree = Any


def detect_launch(env: Mapping[str, str] | None = None) -> str | None:
    """Name the multi-process launcher the environment shows, or ``None`` for one process.

    Returns ``"slurm"``, ``"tpu"`` or ``None``. A SLURM allocation with one task (an
    interactive ``salloc`` shell, a one-GPU ``sbatch`` job) is one process: ``None``.
    """
    env = os.environ if env is None else env
    if "SLURM_JOB_ID" in env and int(env.get("SLURM_NTASKS", "1") or "1") > 1:
        return "slurm"
    hosts = [h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h.strip()]
    if len(hosts) > 1 or int(env.get("MEGASCALE_NUM_SLICES", "1") or "1") > 1:
        return "tpu"
    return None


def initialize_kwargs(cfg: MeshConfig) -> dict[str, Any]:
    """Keyword arguments for ``jax.distributed.initialize`` from a manual configuration
    (empty when jax should detect the cluster itself)."""
    kwargs: dict[str, Any] = {}
    if cfg.coordinator_address is not None:
        kwargs["coordinator_address"] = cfg.coordinator_address
    if cfg.num_processes is not None:
        kwargs["num_processes"] = cfg.num_processes
    if cfg.process_id is not None:
        kwargs["process_id"] = cfg.process_id
    return kwargs


def should_initialize(cfg: MeshConfig, env: Mapping[str, str] | None = None) -> bool:
    """Whether ``maybe_initialize_distributed`` would call ``jax.distributed.initialize``."""
    if cfg.init_distributed == "never":
        return False
    if cfg.init_distributed == "always":
        return True
    return cfg.coordinator_address is not None or detect_launch(env) is not None


def maybe_initialize_distributed(
    cfg: MeshConfig | Mapping[str, Any], env: Mapping[str, str] | None = None, initialize=None
) -> bool:
    """Call ``jax.distributed.initialize`` when the run spans several processes.

    Call first thing in the job, before anything creates arrays or lists devices (building a
    task does): with Hydra, pass the raw ``cfg.mesh`` mapping before validating the rest of the
    config. Safe to call twice (the second call is a no-op). Returns whether it initialised.

    Args:
      cfg: the mesh configuration (``init_distributed`` and the manual fields), or a mapping
        of its fields; an invalid mapping returns ``False`` (the caller's validation reports
        it).
      env: environment to read (default ``os.environ``); for tests.
      initialize: the function to call (default ``jax.distributed.initialize``); for tests.
    """
    if not isinstance(cfg, MeshConfig):
        try:
            cfg = MeshConfig(**dict(cfg))
        except (TypeError, ValueError):
            return False
    if not should_initialize(cfg, env):
        return False
    if initialize is None:
        if jax.distributed.is_initialized():
            return False
        initialize = jax.distributed.initialize
    try:
        initialize(**initialize_kwargs(cfg))
    except RuntimeError as err:
        # jax raises "should only be called once" on a second call: fine for us.
        if "only be called once" not in str(err):
            raise
        return False
    log.info(
        "jax.distributed initialised (%s): process %d of %d, %d local / %d global devices",
        detect_launch(env) or "manual",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
    return True


def is_main_process() -> bool:
    """True in process 0, the one that writes logs, metrics, reports and plots."""
    return jax.process_index() == 0


def process_batch_slice(global_batch: int) -> slice:
    """Rows of a global batch this process feeds (contiguous, equal blocks per process).

    With ``B`` rows over ``n`` processes, process ``i`` loads rows ``[i*B/n, (i+1)*B/n)``.
    Raises ``ValueError`` if ``B`` is not divisible by the process count.
    """
    n, i = jax.process_count(), jax.process_index()
    if global_batch % n:
        raise ValueError(
            f"global batch {global_batch} is not divisible by the {n} processes; "
            "choose a multiple of the process count"
        )
    per = global_batch // n
    return slice(i * per, (i + 1) * per)


def host_local_to_global(local: PyTree, mesh: Mesh) -> PyTree:
    """Assemble per-process batch rows into global arrays split over ``data`` x ``fsdp``.

    Each process passes its own rows (``[B / process_count, ...]``, e.g. from
    ``process_batch_slice``); the result is a global ``[B, ...]`` ``jax.Array`` per leaf,
    with no cross-host copy. On one process this is a ``device_put`` with the batch sharding.
    """

    def one(x):
        x = np.asarray(x)
        global_shape = (x.shape[0] * jax.process_count(), *x.shape[1:])
        return jax.make_array_from_process_local_data(batch_sharding(mesh, x.ndim), x, global_shape)

    return jax.tree.map(one, local)
