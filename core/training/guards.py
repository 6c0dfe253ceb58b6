"""Finite-value guards: stop a run at the first NaN/inf in a watched quantity.

The jit'd step functions return scalar metrics (loss, gradient norm, ...). Checking them on the
host costs one device-to-host copy of a few scalars, which the loop does anyway for logging.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping


class NonFiniteError(FloatingPointError):
    """A watched quantity became NaN or inf; ``step``, ``quantity`` and ``value`` say where."""

    def __init__(self, phase: str, step: int, quantity: str, value: float) -> None:
        self.phase = phase
        self.step = step
        self.quantity = quantity
        self.value = value
        super().__init__(
            f"non-finite {quantity} = {value} at {phase} step {step}; stopping "
            "(the bad state is not saved; the last good checkpoint is kept)"
        )


def check_finite(metrics: Mapping[str, float], phase: str, step: int, watch: Iterable[str]) -> None:
    """Raise :class:`NonFiniteError` naming the first quantity in ``watch`` that is not finite.

    Quantities missing from ``metrics`` are skipped (e.g. a metric only logged at eval steps).
    """
    for name in watch:
        if name in metrics and not math.isfinite(float(metrics[name])):
            raise NonFiniteError(phase, step, name, float(metrics[name]))
