"""Multi-process start-up logic (environment detection, manual config) and the per-host data
helpers, on one process. The multi-process path itself needs several hosts; here the call to
``jax.distributed.initialize`` is replaced by a recorder."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from cliffjax.distributed import (
    MeshConfig,
    detect_launch,
    host_local_to_global,
    is_main_process,
    make_mesh,
    maybe_initialize_distributed,
    process_batch_slice,
)
from cliffjax.distributed.multihost import initialize_kwargs, should_initialize

SRUN_2 = {
    "SLURM_JOB_ID": "4242",
    "SLURM_NTASKS": "2",
    "SLURM_PROCID": "1",
    "SLURM_LOCALID": "0",
    "SLURM_STEP_NODELIST": "node[001-002]",
}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        (SRUN_2, "slurm"),
        ({"SLURM_JOB_ID": "1", "SLURM_NTASKS": "1"}, None),  # one-task allocation
        ({"SLURM_JOB_ID": "1"}, None),  # salloc shell: no task count
        ({"TPU_WORKER_HOSTNAMES": "t1k-0,t1k-1,t1k-2,t1k-3"}, "tpu"),
        ({"TPU_WORKER_HOSTNAMES": "localhost"}, None),  # single-host TPU VM
        ({"MEGASCALE_NUM_SLICES": "2"}, "tpu"),
    ],
)
def test_detect_launch(env, expected):
    assert detect_launch(env) == expected


class Recorder:
    def __init__(self, error: Exception | None = None):
        self.calls: list[dict] = []
        self.error = error

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error


def test_single_process_is_a_no_op():
    rec = Recorder()
    assert maybe_initialize_distributed(MeshConfig(data=-1), env={}, initialize=rec) is False
    assert rec.calls == []
    assert is_main_process()
    assert jax.process_count() == 1


def test_slurm_multi_task_initializes_with_autodetection():
    rec = Recorder()
    assert maybe_initialize_distributed(MeshConfig(data=-1), env=SRUN_2, initialize=rec)
    assert rec.calls == [{}]  # jax reads SLURM_* itself


def test_manual_coordinator_is_passed_through():
    cfg = MeshConfig(coordinator_address="10.0.0.1:1234", num_processes=4, process_id=3)
    rec = Recorder()
    assert should_initialize(cfg, env={})
    assert maybe_initialize_distributed(cfg, env={}, initialize=rec)
    assert rec.calls == [
        {"coordinator_address": "10.0.0.1:1234", "num_processes": 4, "process_id": 3}
    ]
    assert initialize_kwargs(MeshConfig()) == {}


def test_init_modes_override_detection():
    assert not should_initialize(MeshConfig(init_distributed="never"), env=SRUN_2)
    assert should_initialize(MeshConfig(init_distributed="always"), env={})


def test_second_initialize_is_tolerated_but_other_errors_raise():
    already = Recorder(RuntimeError("distributed.initialize should only be called once."))
    assert maybe_initialize_distributed(MeshConfig(), env=SRUN_2, initialize=already) is False
    broken = Recorder(RuntimeError("coordinator unreachable"))
    with pytest.raises(RuntimeError, match="unreachable"):
        maybe_initialize_distributed(MeshConfig(), env=SRUN_2, initialize=broken)


def test_process_batch_slice_single_process_owns_everything():
    assert process_batch_slice(64) == slice(0, 64)


def test_host_local_to_global_shards_rows():
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    local = {"tokens": np.arange(8 * 3, dtype=np.int32).reshape(8, 3)}
    out = host_local_to_global(local, mesh)
    x = out["tokens"]
    assert x.shape == (8, 3)
    assert x.sharding.spec == P(("data", "fsdp"), None)
    np.testing.assert_array_equal(np.asarray(x), local["tokens"])
    assert {s.data.shape for s in x.addressable_shards} == {(2, 3)}


def test_accepts_the_raw_hydra_mapping_and_ignores_invalid_ones():
    rec = Recorder()
    raw = {
        "data": -1,
        "fsdp": 1,
        "tensor": 1,
        "coordinator_address": "h:1",
        "num_processes": 2,
        "process_id": 0,
    }
    assert maybe_initialize_distributed(raw, env={}, initialize=rec)
    assert rec.calls == [{"coordinator_address": "h:1", "num_processes": 2, "process_id": 0}]
    assert not maybe_initialize_distributed({"data": 0}, env=SRUN_2, initialize=rec)
    assert not maybe_initialize_distributed({"datta": 2}, env=SRUN_2, initialize=rec)
    assert len(rec.calls) == 1
