"""The Python side of a training phase: stepping, guards, evaluation, logging, checkpoints.

A phase (warm start, RL, preference) is a host function ``step_fn(state, i) -> (state,
metrics)`` that calls the phase's jit'd functions and returns host floats. :func:`run_phase`
drives it from step ``start`` to ``steps``:

1. run the step, time it;
2. check the watched quantities are finite (``NonFiniteError`` otherwise; the state of a bad
   step is never saved, so the last good checkpoint stays the latest);
3. every ``eval_every`` steps and at the last step, evaluate held-out accuracy;
4. append the record to ``metrics.jsonl`` and update the progress bar;
5. every ``checkpoint.every`` steps and at the last step, save checkpoint ``offset + step``;
6. if a stop was requested (SIGINT/SIGTERM, :mod:`cliffjax.training.signals`), save checkpoint
   ``offset + step`` (if step 5 did not) and raise :class:`Interrupted`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from tqdm.auto import tqdm

from cliffjax.training.checkpoint import Checkpointer
from cliffjax.training.config import TrainerConfig
from cliffjax.training.guards import check_finite
from cliffjax.training.metrics import MetricsWriter, to_host
from cliffjax.training.signals import Interrupted, StopRequest
from cliffjax.training.state import TrainState

StepFn = Callable[[TrainState, int], tuple[TrainState, dict[str, float]]]


@dataclasses.dataclass(frozen=True)
class Phase:
    """One phase of a run.

    Attributes:
      name: ``"sft"``, ``"rl"`` or ``"preference"`` (the ``phase`` of its metric records).
      offset: checkpoint number of this phase's step 0 (phases number checkpoints globally).
      steps: number of steps.
      step_fn: ``step_fn(state, i) -> (state, host metrics)`` for 0-based step ``i``.
      watch: metrics that must stay finite (the NaN/inf guard).
      postfix: metrics shown on the progress bar.
    """

    name: str
    offset: int
    steps: int
    step_fn: StepFn
    watch: tuple[str, ...]
    postfix: tuple[str, ...]


def run_phase(
    phase: Phase,
    state: TrainState,
    reference: Any,
    start: int,
    *,
    cfg: TrainerConfig,
    checkpointer: Checkpointer,
    writer: MetricsWriter,
    evaluate: Callable[[Any], Any],
    meta: dict[str, Any],
    stop: StopRequest | None = None,
) -> tuple[TrainState, dict[str, float]]:
    """Run steps ``start .. phase.steps - 1``; returns the final state and the last eval metrics.

    ``reference`` is saved with every checkpoint (the frozen KL reference of the phase, or
    anything of a fixed structure); ``meta`` (JSON) is saved with it, plus ``phase`` and
    ``step``. When ``stop`` is requested, the step in flight finishes, is saved, and
    :class:`Interrupted` is raised.
    """
    last_eval: dict[str, float] = {}
    bar = tqdm(
        total=phase.steps,
        initial=start,
        desc=phase.name,
        disable=not cfg.progress,
        dynamic_ncols=True,
        mininterval=0.5,
        leave=True,
    )
    postfix: dict[str, str] = {}
    try:
        for i in range(start, phase.steps):
            step = i + 1
            t0 = time.perf_counter()
            state, metrics = phase.step_fn(state, i)
            metrics["step_time"] = time.perf_counter() - t0
            check_finite(metrics, phase.name, step, phase.watch)
            if (cfg.eval_every > 0 and step % cfg.eval_every == 0) or step == phase.steps:
                last_eval = to_host(evaluate(state.params))
                metrics.update(last_eval)
            writer.write(phase.name, step, metrics)
            every = cfg.checkpoint.every
            stopping = stop is not None and stop.requested
            if (every > 0 and step % every == 0) or step == phase.steps or stopping:
                checkpointer.save(
                    phase.offset + step,
                    state,
                    reference,
                    {**meta, "phase": phase.name, "step": step},
                )
            if stopping:
                raise Interrupted(stop.signum, phase.name, step, phase.offset + step)
            for k in (*phase.postfix, "eval_accuracy"):
                if k in metrics:
                    postfix[k.replace("eval_accuracy", "eval_acc")] = f"{metrics[k]:.3f}"
            bar.set_postfix(postfix, refresh=False)
            bar.update(1)
    finally:
        bar.close()
    return state, last_eval
