"""Whole pytrees on disk with orbax, outside the training checkpoints.

    save_tree(path, tree)                       # a directory, written atomically by orbax
    tree = restore_tree(path, like)             # ``like``: arrays or ShapeDtypeStructs

For results that are not a training state: the sweeps' shared warm-start parameters and their
recorded rollouts. Restores always use an abstract target, so dtypes and the tree structure
come back exactly. Several processes may race to write the same path (parallel sweep jobs
sharing a warm start): the first finished write wins and the others keep it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

PyTree = Any


def save_tree(path: str | Path, tree: PyTree) -> None:
    """Write ``tree`` (a pytree of arrays and Python scalars) to the directory ``path``."""
    path = Path(path).absolute()
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpointer = ocp.StandardCheckpointer()
    try:
        checkpointer.save(path, tree)
        checkpointer.wait_until_finished()
    except (ValueError, FileExistsError, OSError):
        if not path.exists():  # not a lost race: a real failure
            raise
    finally:
        checkpointer.close()


def restore_tree(path: str | Path, like: PyTree) -> PyTree:
    """Read the tree saved at ``path``; ``like`` gives its structure, shapes and dtypes."""
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), like)
    checkpointer = ocp.StandardCheckpointer()
    try:
        return checkpointer.restore(Path(path).absolute(), target)
    finally:
        checkpointer.close()


def tree_exists(path: str | Path) -> bool:
    """Whether a finished tree is stored at ``path``."""
    return os.path.isdir(path)
