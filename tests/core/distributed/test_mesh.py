"""MeshConfig validation, mesh construction on 8 simulated devices, batch shardings, and the
Hydra ``conf/mesh`` group files."""

from __future__ import annotations

import pathlib

import jax
import numpy as np
import pytest
import yaml
from jax.sharding import AxisType, PartitionSpec

from cliffjax.distributed import (
    MeshConfig,
    batch_sharding,
    batch_shardings,
    batch_spec,
    make_mesh,
    replicated,
)
from cliffjax.distributed.mesh import hybrid_split

CONF_MESH = pathlib.Path(__file__).resolve().parents[3] / "conf" / "mesh"


@pytest.mark.parametrize(
    ("cfg", "shape"),
    [
        (MeshConfig(), (1, 1, 1)),
        (MeshConfig(data=8), (8, 1, 1)),
        (MeshConfig(data=2, fsdp=4), (2, 4, 1)),
        (MeshConfig(data=2, fsdp=2, tensor=2), (2, 2, 2)),
        (MeshConfig(tensor=8), (1, 1, 8)),
        (MeshConfig(data=-1), (8, 1, 1)),
        (MeshConfig(data=2, fsdp=-1), (2, 4, 1)),
        (MeshConfig(fsdp=2, tensor=-1), (1, 2, 4)),
    ],
)
def test_axis_sizes_resolve_rest(cfg, shape):
    assert cfg.axis_sizes(8) == shape


def test_all_ones_is_one_device_on_any_machine():
    assert MeshConfig().axis_sizes(1) == (1, 1, 1)
    mesh = make_mesh(MeshConfig())
    assert mesh.devices.size == 1 and mesh.devices.flat[0] == jax.devices()[0]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"data": 0}, "data"),
        ({"fsdp": -2}, "fsdp"),
        ({"tensor": 1.5}, "tensor"),
        ({"data": -1, "tensor": -1}, "at most one"),
        ({"rules": "nope"}, "rules"),
        ({"init_distributed": "sometimes"}, "init_distributed"),
        ({"num_processes": 0}, "num_processes"),
        ({"num_processes": 2, "process_id": 2}, "process_id"),
    ],
)
def test_config_validation_names_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        MeshConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"data": 3}, "MeshConfig.data"),  # 3 does not divide 8
        ({"data": 4, "fsdp": 4}, "MeshConfig.fsdp"),  # 16 devices asked, 8 there
        ({"fsdp": 3, "data": -1}, "MeshConfig.data=-1"),  # the rest is not an integer
        ({"data": 2, "tensor": 2}, "MeshConfig.tensor"),  # 4 != 8
    ],
)
def test_sizes_that_do_not_fit_the_devices_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        make_mesh(MeshConfig(**kwargs))


def test_make_mesh_axes_are_auto_and_use_all_devices():
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    assert mesh.axis_names == ("data", "fsdp", "tensor")
    assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
    assert mesh.axis_types == (AxisType.Auto,) * 3
    assert sorted(d.id for d in mesh.devices.flat) == sorted(d.id for d in jax.devices())


def test_make_mesh_on_a_device_subset():
    mesh = make_mesh(MeshConfig(), devices=jax.devices()[:1])
    assert mesh.devices.size == 1


def test_batch_sharding_splits_rows_over_data_and_fsdp():
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    assert batch_spec(2) == PartitionSpec(("data", "fsdp"), None)
    assert batch_spec(0) == PartitionSpec()
    x = jax.device_put(np.arange(8 * 3).reshape(8, 3), batch_sharding(mesh, 2))
    # 4 row blocks of 2 rows, each held by the 2 devices of one tensor group.
    assert {s.data.shape for s in x.addressable_shards} == {(2, 3)}
    rows = {tuple(np.asarray(s.data)[:, 0]) for s in x.addressable_shards}
    assert len(rows) == 4
    assert replicated(mesh).spec == PartitionSpec()


def test_batch_shardings_reject_indivisible_batch():
    mesh = make_mesh(MeshConfig(data=2, fsdp=4))
    tree = {"tokens": np.zeros((8, 5), np.int32), "scale": np.float32(1.0)}
    sh = batch_shardings(mesh, tree)
    assert sh["tokens"].spec == PartitionSpec(("data", "fsdp"), None)
    assert sh["scale"].spec == PartitionSpec()
    with pytest.raises(ValueError, match="not divisible by data\\*fsdp = 8"):
        batch_shardings(mesh, {"tokens": np.zeros((12, 5), np.int32)})


def test_hybrid_split_puts_hosts_on_data():
    # 4 hosts x 8 devices, 4x4x2 mesh: each host holds a 1x4x2 block.
    assert hybrid_split((4, 4, 2), 4, 8) == ((1, 4, 2), (4, 1, 1))
    assert hybrid_split((8, 8, 1), 4, 16) == ((2, 8, 1), (4, 1, 1))
    assert hybrid_split((2, 8, 1), 1, 16) is None  # one process: plain mesh
    assert hybrid_split((2, 16, 1), 4, 8) is None  # FSDP spans hosts: no clean split
    assert hybrid_split((3, 4, 1), 2, 6) is None  # data not divisible by hosts


def test_every_conf_mesh_file_is_a_valid_config():
    files = sorted(CONF_MESH.glob("*.yaml"))
    names = {f.stem for f in files}
    assert {"single", "dp", "fsdp", "tp", "dp2_fsdp4", "dp2_fsdp2_tp2", "multinode"} <= names
    for f in files:
        cfg = MeshConfig(**yaml.safe_load(f.read_text()))
        # Every group file builds a mesh on this 8-device host ("single" on one device).
        assert make_mesh(cfg).devices.size == (1 if f.stem == "single" else 8), f.stem
    single = MeshConfig(**yaml.safe_load((CONF_MESH / "single.yaml").read_text()))
    assert single.axis_sizes(1) == (1, 1, 1)
    assert MeshConfig(**yaml.safe_load((CONF_MESH / "dp2_fsdp2_tp2.yaml").read_text())).axis_sizes(
        8
    ) == (2, 2, 2)
