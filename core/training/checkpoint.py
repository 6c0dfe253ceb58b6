"""Orbax checkpoints of the explicit training state.

A checkpoint holds three items: ``state`` (the :class:`~cliffjax.training.state.TrainState`: params,
optimizer state, step, PRNG key), ``reference`` (the frozen reference parameters, or the
params again when a phase has none, so every checkpoint has the same layout) and ``meta`` (JSON:
the phase, its step and anything the driver needs to continue, e.g. the eval accuracy before
RL). Data is generated from keys folded with the step, so the step *is* the data-iterator
position and resuming replays exactly the same batches.

Checkpoint numbers are global: the warm start uses ``0..sft_steps`` and the next phase
continues from there, so "the latest" is unambiguous across phases. Restores always use an
abstract target (``jax.ShapeDtypeStruct``), as orbax requires for typed results.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from cliffjax.training.state import TrainState, abstract_state

PyTree = Any


class Checkpointer:
    """Thin wrapper over ``ocp.CheckpointManager`` (synchronous saves, last ``keep`` kept)."""

    def __init__(self, directory: str, keep: int) -> None:
        self.directory = os.path.abspath(directory)
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, enable_async_checkpointing=False
            ),
        )

    def latest_step(self) -> int | None:
        """Number of the newest checkpoint, or ``None`` when there is none."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """Numbers of the checkpoints on disk, oldest first."""
        return sorted(self._manager.all_steps())

    def save(self, number: int, state: TrainState, reference: PyTree, meta: dict[str, Any]) -> None:
        """Write checkpoint ``number`` (overwrites nothing: an existing number is skipped)."""
        if number in self._manager.all_steps():
            return
        self._manager.save(
            number,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                reference=ocp.args.StandardSave(reference),
                meta=ocp.args.JsonSave(meta),
            ),
        )
        self._manager.wait_until_finished()

    def restore_meta(self, number: int) -> dict[str, Any]:
        """Only the JSON metadata of checkpoint ``number``."""
        out = self._manager.restore(number, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(out["meta"])

    def restore(
        self, number: int, like_state: TrainState, like_reference: PyTree
    ) -> tuple[TrainState, PyTree, dict[str, Any]]:
        """Restore checkpoint ``number`` into the structure (and shardings) of the templates."""
        ref_target = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
            like_reference,
        )
        out = self._manager.restore(
            number,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state(like_state)),
                reference=ocp.args.StandardRestore(ref_target),
                meta=ocp.args.JsonRestore(),
            ),
        )
        return out["state"], out["reference"], dict(out["meta"])

    def close(self) -> None:
        """Flush and release the manager."""
        self._manager.wait_until_finished()
        self._manager.close()
