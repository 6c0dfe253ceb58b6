"""Orbax checkpoints of the explicit training state.

A checkpoint holds three items: ``state`` (the :class:`~cliffjax.training.state.TrainState`: params,
optimizer state, step, PRNG key), ``reference`` (the frozen reference parameters, or the
params again when a phase has none, so every checkpoint has the same layout; absent with LoRA
adapters, whose reference is the base weights inside ``state``) and ``meta`` (JSON:
the phase, its step and anything the driver needs to continue, e.g. the eval accuracy before
RL). Data is generated from keys folded with the step, so the step *is* the data-iterator
position and resuming replays exactly the same batches.

Checkpoint numbers are global: the warm start uses ``0..sft_steps`` and the next phase
continues from there, so "the latest" is unambiguous across phases. Restores always use an
abstract target (``jax.ShapeDtypeStruct``), as orbax requires for typed results.

Integrity. Orbax stores raw array chunks without checksums: a garbled byte restores silently
as a wrong number, and a truncated file fails deep inside tensorstore. After each save the
checkpoint therefore gets ``digest.json`` (size and SHA-256 of every file in it, written last,
atomically). :meth:`Checkpointer.verify` recomputes them and raises :class:`CheckpointDamaged`
with a one-line reason naming the file; :meth:`Checkpointer.restore_latest_intact` walks from
the newest checkpoint to older ones, moves each damaged one aside into
``<checkpoints>.damaged/<number>`` (so the number can be saved again) and restores the newest
intact one. A checkpoint without ``digest.json`` (written by older code, or by a process
killed between orbax's commit and the digest) is restored on orbax's word alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from typing import Any

import jax
import orbax.checkpoint as ocp

from cliffjax.training.state import TrainState, abstract_state

PyTree = Any
DIGEST = "digest.json"


class CheckpointDamaged(Exception):
    """Checkpoint ``number`` cannot be restored; ``reason`` is one line naming the file."""

    def __init__(self, number: int, reason: str) -> None:
        self.number = number
        self.reason = reason
        super().__init__(f"checkpoint {number} is damaged: {reason}")


class NoIntactCheckpoint(Exception):
    """Every checkpoint of a directory is damaged (the run cannot be resumed)."""


def _one_line(e: BaseException, limit: int = 160) -> str:
    """The first line of an exception message, shortened (tensorstore errors run for pages)."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _file_digests(root: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if rel in (DIGEST, DIGEST + ".tmp"):
                continue
            out[rel] = {"size": os.path.getsize(path), "sha256": _sha256(path)}
    return dict(sorted(out.items()))


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
        items = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(meta)}
        if reference is not None:  # None: no stored reference (LoRA: the base, adapters off)
            items["reference"] = ocp.args.StandardSave(reference)
        self._manager.save(number, args=ocp.args.Composite(**items))
        self._manager.wait_until_finished()
        if jax.process_index() == 0:
            step_dir = self.path(number)
            digests = _file_digests(step_dir)
            tmp = os.path.join(step_dir, DIGEST + ".tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(digests, fh, indent=1)
            os.replace(tmp, os.path.join(step_dir, DIGEST))

    def path(self, number: int) -> str:
        """Directory of checkpoint ``number``."""
        return os.path.join(self.directory, str(number))

    def verify(self, number: int) -> bool:
        """Check checkpoint ``number`` against its ``digest.json``.

        Returns ``True`` when verified, ``False`` when it has no digest (nothing to check).
        Raises :class:`CheckpointDamaged` naming the first missing, truncated or changed file.
        """
        step_dir = self.path(number)
        digest_path = os.path.join(step_dir, DIGEST)
        if not os.path.isfile(digest_path):
            return False
        try:
            with open(digest_path, encoding="utf-8") as fh:
                expected = json.load(fh)
        except (OSError, ValueError) as e:
            raise CheckpointDamaged(number, f"{DIGEST} unreadable ({_one_line(e)})") from None
        for rel, want in expected.items():
            path = os.path.join(step_dir, rel)
            if not os.path.isfile(path):
                raise CheckpointDamaged(number, f"{rel} is missing")
            size = os.path.getsize(path)
            if size != want["size"]:
                raise CheckpointDamaged(number, f"{rel} has {size} bytes, expected {want['size']}")
            if _sha256(path) != want["sha256"]:
                raise CheckpointDamaged(number, f"{rel} has changed (SHA-256 differs)")
        return True

    def quarantine(self, number: int) -> str:
        """Move checkpoint ``number`` into ``<checkpoints>.damaged/`` and return its new path."""
        dest_root = self.directory + ".damaged"
        os.makedirs(dest_root, exist_ok=True)
        dest = os.path.join(dest_root, str(number))
        suffix = 1
        while os.path.exists(dest):
            dest = os.path.join(dest_root, f"{number}.{suffix}")
            suffix += 1
        shutil.move(self.path(number), dest)
        self._manager.reload()
        return dest

    def restore_latest_intact(
        self,
        like: Callable[[dict[str, Any]], tuple[TrainState, PyTree]],
        warn: Callable[[str], None],
        *,
        move_damaged: bool = True,
    ) -> tuple[int, TrainState, PyTree, dict[str, Any]] | None:
        """Restore the newest checkpoint that is intact, newest first.

        Args:
          like: ``like(meta) -> (state template, reference template)`` for a checkpoint's
            metadata (the phase decides the optimizer state's structure).
          warn: receives one line per damaged checkpoint.
          move_damaged: move damaged checkpoints aside (:meth:`quarantine`; process 0 only).

        Returns:
          ``(number, state, reference, meta)``, or ``None`` when the directory has no checkpoint.

        Raises:
          NoIntactCheckpoint: there are checkpoints but none is intact.
          Exception: what orbax raises when a *verified* checkpoint does not fit the templates
            (a changed model, say): that is not damage, so nothing is moved.
        """
        steps = self.all_steps()
        if not steps:
            return None
        for number in reversed(steps):
            try:
                verified = self.verify(number)
            except CheckpointDamaged as e:
                reason = e.reason
            else:
                if verified:  # the bytes are the saved ones: a failure now is not damage
                    meta = self.restore_meta(number)
                    return (number, *self.restore(number, *like(meta)))
                try:
                    meta = self.restore_meta(number)
                except Exception as e:  # orbax and tensorstore raise many types
                    meta, reason = None, f"meta unreadable: {_one_line(e)}"
                if meta is not None:
                    templates = like(meta)  # outside the try: a refusal here is not damage
                    try:
                        return (number, *self.restore(number, *templates))
                    except Exception as e:
                        reason = f"restore failed: {_one_line(e)}"
                reason = f"{reason} (no {DIGEST} to check)"
            where = ""
            if move_damaged and jax.process_index() == 0:
                where = f"; moved to {self.quarantine(number)}"
            older = [n for n in steps if n < number]
            then = f"falling back to checkpoint {older[-1]}" if older else "no older checkpoint"
            warn(f"checkpoint {number} is damaged ({reason}){where}; {then}")
        raise NoIntactCheckpoint(
            f"no intact checkpoint in {self.directory} (tried {', '.join(map(str, steps[::-1]))})"
        )

    def restore_meta(self, number: int) -> dict[str, Any]:
        """Only the JSON metadata of checkpoint ``number``."""
        out = self._manager.restore(number, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(out["meta"])

    def restore(
        self, number: int, like_state: TrainState, like_reference: PyTree
    ) -> tuple[TrainState, PyTree, dict[str, Any]]:
        """Restore checkpoint ``number`` into the structure (and shardings) of the templates."""
        items = {
            "state": ocp.args.StandardRestore(abstract_state(like_state)),
            "meta": ocp.args.JsonRestore(),
        }
        if like_reference is not None:
            ref_target = jax.tree.map(
                lambda x: jax.ShapeDtypeStruct(
                    x.shape, x.dtype, sharding=getattr(x, "sharding", None)
                ),
                like_reference,
            )
            items["reference"] = ocp.args.StandardRestore(ref_target)
        out = self._manager.restore(number, args=ocp.args.Composite(**items))
        reference = out["reference"] if like_reference is not None else None
        return out["state"], reference, dict(out["meta"])

    def close(self) -> None:
        """Flush and release the manager."""
        self._manager.wait_until_finished()
        self._manager.close()
