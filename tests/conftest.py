"""Suite-wide JAX settings.

* Eight simulated CPU devices, so sharding tests can build real meshes. The flag must be set
  before jax initialises its backends, hence at import time of this top-level conftest.
* ``jax_numpy_rank_promotion="raise"`` catches silent (B,1)x(B,T) broadcasting bugs.
"""

import os

os.environ.setdefault("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
