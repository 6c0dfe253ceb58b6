"""Device mesh with three named axes: ``data``, ``fsdp``, ``tensor``.

The mesh is the only thing a researcher changes to scale a run (``mesh=...`` on the command
line). Parameters are laid out over it by the partition rules in ``partition.py``; batches are
split over ``data`` x ``fsdp`` (every device of those two axes sees different rows, the
``tensor`` axis sees the same rows and splits the layers' width instead).

* ``data``: pure data parallelism. Parameters and optimizer state are *replicated* along it;
  gradients are all-reduced over it.
* ``fsdp``: fully sharded data parallelism (ZeRO-3). The batch is split along it like ``data``,
  and each parameter (and its Adam moments) is split along its largest divisible dimension;
  XLA all-gathers a weight just before it is used and reduce-scatters its gradient.
* ``tensor``: Megatron-style tensor parallelism (arXiv:1909.08053, Sec. 3): column-parallel
  QKV / up / gate projections, row-parallel output / down projections.

Axis types are ``Auto`` (classic GSPMD propagation): with the ``Explicit`` default of
``jax.make_mesh`` every contraction over a sharded dimension would need an ``out_sharding=``
in the model code, which the model does not (and should not) know about.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

AXES: tuple[str, str, str] = ("data", "fsdp", "tensor")
"""Mesh axis names, outermost first. ``data`` is outermost so that, with devices ordered by
host, it is the axis that crosses hosts (its only collective is the gradient all-reduce)."""

BATCH_AXES: tuple[str, str] = ("data", "fsdp")
"""Axes the batch (leading) dimension is split over."""

_INIT_MODES = ("auto", "always", "never")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Shape of the device mesh and how the processes find each other.

    The three sizes multiply to the number of devices. At most one of them may be ``-1``,
    meaning "all the devices the others leave". ``MeshConfig()`` (1 x 1 x 1) is one device
    whatever the machine has;
    ``MeshConfig(data=-1)`` is plain data parallelism over every device.
    """

    data: int = 1
    """Data-parallel replicas (parameters replicated, batch split). ``-1``: the rest."""
    fsdp: int = 1
    """Fully-sharded data-parallel ways (parameters, gradients and optimizer state split along
    their largest divisible dimension; batch split). ``-1``: the rest."""
    tensor: int = 1
    """Tensor-parallel ways (Megatron column/row split of attention and MLP). ``-1``: the rest."""
    rules: str = "transformer"
    """Name of the partition rule set in ``cliffjax.distributed.partition.PARTITION_RULES``."""
    init_distributed: str = "auto"
    """Multi-process start: ``auto`` calls ``jax.distributed.initialize()`` when SLURM (srun
    with more than one task) or a multi-host TPU slice is detected, or when
    ``coordinator_address`` is set; ``always`` calls it unconditionally (jax then detects the
    cluster itself); ``never`` skips it (one process)."""
    coordinator_address: str | None = None
    """``host:port`` of process 0 for a manual multi-process launch; ``None`` lets jax detect
    it (SLURM, TPU pod, Open MPI, Kubernetes)."""
    num_processes: int | None = None
    """Number of processes for a manual launch (with ``coordinator_address``)."""
    process_id: int | None = None
    """This process's index for a manual launch (with ``coordinator_address``)."""

    def __post_init__(self) -> None:
        sizes = {"data": self.data, "fsdp": self.fsdp, "tensor": self.tensor}
        for name, size in sizes.items():
            if not isinstance(size, int) or isinstance(size, bool) or (size < 1 and size != -1):
                raise ValueError(
                    f"MeshConfig.{name}={size!r}: expected a positive int or -1 (the rest)"
                )
        if sum(size == -1 for size in sizes.values()) > 1:
            raise ValueError(f"MeshConfig: at most one of data/fsdp/tensor may be -1, got {sizes}")
        if self.init_distributed not in _INIT_MODES:
            raise ValueError(
                f"MeshConfig.init_distributed={self.init_distributed!r}: expected one of "
                f"{_INIT_MODES}"
            )
        if self.num_processes is not None and self.num_processes < 1:
            raise ValueError(
                f"MeshConfig.num_processes={self.num_processes!r}: expected a positive int"
            )
        if self.process_id is not None and self.num_processes is not None:
            if not 0 <= self.process_id < self.num_processes:
                raise ValueError(
                    f"MeshConfig.process_id={self.process_id!r}: expected 0 <= process_id < "
                    f"num_processes={self.num_processes}"
                )
        # Imported here to avoid a cycle (partition imports mesh for the axis names).
        from cliffjax.distributed.partition import PARTITION_RULES

        if self.rules not in PARTITION_RULES:
            raise ValueError(
                f"MeshConfig.rules={self.rules!r}: expected one of {sorted(PARTITION_RULES)}"
            )

    @property
    def is_single_device(self) -> bool:
        """``1 x 1 x 1``: one device (the first), however many the machine has."""
        return (self.data, self.fsdp, self.tensor) == (1, 1, 1)

    def axis_sizes(self, num_devices: int) -> tuple[int, int, int]:
        """Resolve ``-1`` and check the product equals ``num_devices``.

        ``1 x 1 x 1`` is the exception: it always means one device.

        Raises ``ValueError`` naming the offending field when the sizes do not fit.
        """
        sizes = {"data": self.data, "fsdp": self.fsdp, "tensor": self.tensor}
        if self.is_single_device:
            return 1, 1, 1
        fixed = math.prod(size for size in sizes.values() if size != -1)
        rest = [name for name, size in sizes.items() if size == -1]
        if rest:
            name = rest[0]
            if num_devices % fixed:
                raise ValueError(
                    f"MeshConfig.{name}=-1: the other axes use {fixed} devices, which does not "
                    f"divide the {num_devices} available"
                )
            sizes[name] = num_devices // fixed
        elif fixed != num_devices:
            # Name the first axis that cannot divide the device count; if each divides on
            # its own (4 x 4 on 8 devices) name the last one that is not 1.
            not_dividing = [n for n, s in sizes.items() if num_devices % s]
            bigger = [n for n, s in sizes.items() if s != 1] or ["data"]
            bad = (not_dividing or bigger[-1:])[0]
            raise ValueError(
                f"MeshConfig.{bad}={sizes[bad]}: data*fsdp*tensor = "
                f"{self.data}*{self.fsdp}*{self.tensor} = {fixed}, expected the device count "
                f"{num_devices} (set one axis to -1 to take the rest)"
            )
        return sizes["data"], sizes["fsdp"], sizes["tensor"]


def hybrid_split(
    shape: tuple[int, int, int], process_count: int, local_devices: int
) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
    """Split a mesh shape into (per-host, across-host) parts when ``data`` crosses hosts.

    Returns ``(ici_shape, dcn_shape)`` for ``mesh_utils.create_hybrid_device_mesh`` when each
    host holds a whole ``(data/hosts, fsdp, tensor)`` block, so FSDP and tensor collectives
    stay on the fast in-host links and only the gradient all-reduce of ``data`` crosses the
    network; ``None`` when the shape does not split that way (then the plain topology-aware
    order of ``jax.make_mesh`` is used).
    """
    data, fsdp, tensor = shape
    if process_count <= 1 or data % process_count:
        return None
    ici = (data // process_count, fsdp, tensor)
    if math.prod(ici) != local_devices:
        return None
    return ici, (process_count, 1, 1)


def make_mesh(cfg: MeshConfig, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """Build the ``(data, fsdp, tensor)`` mesh over ``devices`` (default: all devices).

    One process: ``jax.make_mesh`` (device order follows the TPU/GPU interconnect). Several
    processes: hosts along ``data`` (``hybrid_split``) when the shape allows. Axis types are
    ``Auto`` (see the module docstring).
    """
    devs = list(jax.devices() if devices is None else devices)
    shape = cfg.axis_sizes(len(devs))
    if cfg.is_single_device:
        devs = devs[:1]
    auto = (AxisType.Auto,) * 3
    split = hybrid_split(shape, jax.process_count(), jax.local_device_count())
    if devices is None and split is not None:
        from jax.experimental import mesh_utils

        grid = mesh_utils.create_hybrid_device_mesh(
            split[0], split[1], devs, process_is_granule=True
        )
        return Mesh(grid, AXES, axis_types=auto)
    return jax.make_mesh(shape, AXES, axis_types=auto, devices=devs)


def batch_spec(ndim: int) -> PartitionSpec:
    """``PartitionSpec`` of an ``ndim``-rank batch array: rows over ``data`` x ``fsdp``."""
    if ndim == 0:
        return PartitionSpec()
    return PartitionSpec(BATCH_AXES, *([None] * (ndim - 1)))


def batch_sharding(mesh: Mesh, ndim: int = 1) -> NamedSharding:
    """``NamedSharding`` for a batch array of rank ``ndim`` (leading dim split)."""
    return NamedSharding(mesh, batch_spec(ndim))


def replicated(mesh: Mesh) -> NamedSharding:
    """Fully replicated sharding on ``mesh`` (scalars, PRNG keys, step counters)."""
    return NamedSharding(mesh, PartitionSpec())


def batch_shards(mesh: Mesh) -> int:
    """Number of ways the batch dimension is split (``data * fsdp``)."""
    return int(np.prod([mesh.shape[a] for a in BATCH_AXES]))


def batch_shardings(mesh: Mesh, tree):
    """Shardings for a pytree of batch arrays (leading dim split, scalars replicated).

    Raises ``ValueError`` if a leading dimension is not divisible by ``data * fsdp``: a
    silently replicated batch would run every row on every device.
    """
    ways = batch_shards(mesh)

    def one(x):
        shape = np.shape(x)
        if len(shape) == 0:
            return replicated(mesh)
        if shape[0] % ways:
            raise ValueError(
                f"batch dimension {shape[0]} is not divisible by data*fsdp = {ways}; "
                "choose a batch size that is a multiple of it"
            )
        return batch_sharding(mesh, len(shape))

    return jax.tree.map(one, tree)


def constrain_rows(x: jax.Array) -> jax.Array:
    """Ask XLA to keep ``x``'s rows split over ``data`` x ``fsdp`` (a sharding constraint).

    For activations inside a model, e.g. ``h = constrain_rows(h)`` at each block boundary.
    Without it GSPMD may keep an activation's feature dimension split like the FSDP-sharded
    weights and its rows split over ``data`` only, so FSDP devices would compute on the same
    rows. A no-op when traced outside a mesh context (``Layout.jit`` compiles under
    ``jax.set_mesh``), for rank-0 values, or when the rows do not divide evenly, so model code
    may call it unconditionally.
    """
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or not set(BATCH_AXES) <= set(mesh.axis_names) or np.ndim(x) == 0:
        return x
    ways = int(np.prod([mesh.shape[a] for a in BATCH_AXES]))
    if ways == 1 or x.shape[0] % ways:
        return x
    return jax.lax.with_sharding_constraint(x, batch_spec(np.ndim(x)))
