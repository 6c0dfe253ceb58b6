"""A stop request (SIGINT/SIGTERM) ends a phase at the next step boundary with a checkpoint of
that step; the handler turns the next signal into an immediate exit."""

import os
import signal

import jax.numpy as jnp
import optax
import pytest

from cliffjax.training.checkpoint import Checkpointer
from cliffjax.training.config import CheckpointConfig, TrainerConfig
from cliffjax.training.loop import Phase, run_phase
from cliffjax.training.metrics import MetricsWriter, read_metrics
from cliffjax.training.signals import Interrupted, StopRequest
from cliffjax.training.state import init_state


def test_stop_saves_the_step_in_flight_and_raises(tmp_path):
    stop = StopRequest()

    def step_fn(state, i):
        if i == 2:  # the request arrives while 0-based step 2 (step 3) runs
            stop.request(signal.SIGTERM)
        return state._replace(params={"w": state.params["w"] + 1.0}), {"loss": float(i)}

    state = init_state({"w": jnp.zeros(2)}, optax.sgd(0.1), jnp.zeros(2, jnp.uint32))
    ckpt = Checkpointer(str(tmp_path / "ck"), keep=5)
    writer = MetricsWriter(str(tmp_path / "m.jsonl"))
    phase = Phase("rl", offset=10, steps=8, step_fn=step_fn, watch=("loss",), postfix=())
    cfg = TrainerConfig(checkpoint=CheckpointConfig(every=0), progress=False)
    with pytest.raises(Interrupted) as e:
        run_phase(
            phase, state, {"w": jnp.zeros(2)}, 0, cfg=cfg, checkpointer=ckpt, writer=writer,
            evaluate=lambda p: {}, meta={}, stop=stop,
        )  # fmt: skip
    writer.close()
    assert (e.value.phase, e.value.step, e.value.checkpoint) == ("rl", 3, 13)
    assert e.value.exit_status == 143
    assert str(e.value) == "interrupted by SIGTERM after rl step 3; checkpoint 13 saved"
    assert ckpt.all_steps() == [13]  # every=0: only the stop saved one
    assert ckpt.restore_meta(13) == {"phase": "rl", "step": 3}
    assert [r["step"] for r in read_metrics(str(tmp_path / "m.jsonl"))] == [1, 2, 3]
    ckpt.close()


def test_first_signal_sets_the_flag_and_arms_the_default_action():
    before = signal.getsignal(signal.SIGINT)
    stop = StopRequest()
    with stop.installed():
        assert signal.getsignal(signal.SIGTERM) == stop._handle
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested and stop.signum == signal.SIGINT
        # a second Ctrl-C (or SIGTERM) would now end the process at once
        assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is before


def test_an_ignored_signal_stays_ignored():
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a shell's background job
    try:
        stop = StopRequest()
        with stop.installed():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) == stop._handle
            os.kill(os.getpid(), signal.SIGINT)
            assert not stop.requested
    finally:
        signal.signal(signal.SIGINT, before)
