"""Stopping a run cleanly on SIGINT (Ctrl-C) or SIGTERM (a scheduler's preemption notice).

The first signal only sets a flag (:class:`StopRequest`); the training loop checks it at the
next step boundary, saves a checkpoint of the step just finished and raises
:class:`Interrupted`, so the run can be resumed bitwise-identically. The handler then restores
the default action of both signals: a second Ctrl-C (or SIGTERM) ends the process at once, even
inside a long compiled step, leaving the checkpoints already on disk.

Exit status of an interrupted job: ``128 + signal number`` (130 for SIGINT, 143 for SIGTERM), the
shell's convention, so a scheduler sees the job as not finished.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """The run stopped at a step boundary on request; a checkpoint of that step is saved.

    Attributes:
      signum: the signal that asked for the stop.
      phase: the phase that was running.
      step: the last step completed (and saved) in that phase.
      checkpoint: the number of the checkpoint saved for it.
    """

    def __init__(self, signum: int, phase: str, step: int, checkpoint: int) -> None:
        self.signum = signum
        self.phase = phase
        self.step = step
        self.checkpoint = checkpoint
        super().__init__(
            f"interrupted by {signal.Signals(signum).name} after {phase} step {step}; "
            f"checkpoint {checkpoint} saved"
        )

    @property
    def exit_status(self) -> int:
        """``128 + signum`` (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


class StopRequest:
    """A flag the training loop polls between steps; :meth:`installed` ties it to signals."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._handled: tuple[signal.Signals, ...] = ()

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self.signum is not None

    def request(self, signum: int = signal.SIGINT) -> None:
        """Ask for a stop (what the signal handler does; tests call it directly)."""
        if self.signum is None:
            self.signum = int(signum)

    def _handle(self, signum: int, frame: object) -> None:
        self.request(signum)
        for s in self._handled:  # the next one takes the default action: exit at once
            signal.signal(s, signal.SIG_DFL)
        name = signal.Signals(signum).name
        # os.write: a handler may run while print() holds the stream's lock.
        os.write(
            2,
            f"\n{name}: stopping after the current step and saving a checkpoint "
            "(send it again to exit at once)\n".encode(),
        )

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Handle SIGINT and SIGTERM with this flag inside the block (main thread only).

        A signal the process was started with ignored (``SIG_IGN``: a shell starts background
        jobs with SIGINT ignored) stays ignored.
        """
        previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
        self._handled = tuple(s for s in STOP_SIGNALS if previous[s] is not signal.SIG_IGN)
        for s in self._handled:
            signal.signal(s, self._handle)
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
