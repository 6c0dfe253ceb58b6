"""Suite-wide JAX settings and test order.

* Eight simulated CPU devices, so sharding tests can build real meshes. The flag must be set
  before jax initialises its backends, hence at import time of this top-level conftest.
* ``jax_numpy_rank_promotion="raise"`` catches silent (B,1)x(B,T) broadcasting bugs.
* One persistent compilation cache per test run (unless ``JAX_COMPILATION_CACHE_DIR`` is set):
  the pytest-xdist workers and the subprocesses the tests start share the programs they have
  in common (the same tiny models and steps recur across modules). It starts empty on every
  run, so timings do not depend on earlier runs, and is removed at the end.
* The slowest modules are collected first: under ``--dist loadfile`` each worker then starts
  on a long module and the workers finish together instead of one waiting on the other.
"""

import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(
        tempfile.gettempdir(), f"cliffjax-test-jax-cache-{os.getpid()}"
    )
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

# Modules that take longest on a 2-core CPU (pytest --durations), slowest first.
_SLOW_FIRST = (
    "tests/core/training/test_rl_drivers.py",
    "tests/experiments/test_policy_cliff.py",
    "tests/core/analysis/test_sensitivity.py",
    "tests/experiments/test_rlvr_learning.py",
    "tests/experiments/test_sensitivity.py",
    "tests/experiments/test_train_run.py",
    "tests/core/training/test_rl_steps.py",
    "tests/experiments/test_train_hf.py",
    "tests/core/distributed/test_train_mesh.py",
    "tests/test_packaging.py",
    "tests/experiments/test_train_text.py",
    "tests/experiments/test_policy_cliff_text.py",
    "tests/core/distributed/test_equivalence.py",
    "tests/core/models/llama/test_llama_modeling.py",
    "tests/core/sampling/test_sampler.py",
)
_ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(_SLOW_FIRST)}

    def key(item):
        try:
            rel = Path(item.path).resolve().relative_to(_ROOT).as_posix()
        except ValueError:
            return len(rank)
        return rank.get(rel, len(rank))

    items.sort(key=key)  # stable: the order within a module is kept


def pytest_sessionfinish(session, exitstatus):
    # The process that chose the cache removes it: the controller under xdist (its workers
    # inherit the variable, so they do not own it), else the one pytest process.
    if _OWN_CACHE and not hasattr(session.config, "workerinput"):
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
