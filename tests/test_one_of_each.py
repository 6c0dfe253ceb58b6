"""Every trainer piece exists once in the library and the apps (benchmarks excluded: they time
the pieces against PyTorch and may build their inputs by hand).

Each entry names a call that only the piece's one home may make; a second trainer, rollout,
SFT loop, task registry or sampler-settings builder elsewhere in ``core/`` or
``experiments/`` fails here, naming the file.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(
    p
    for d in ("core", "experiments")
    for p in (ROOT / d).rglob("*.py")
    if "bench" not in p.name and "bench" not in p.parent.name
)

# piece: (pattern of the call, the files allowed to make it (its home and the module that
# defines it, whose docstring shows it), relative to the repository)
PIECES = {
    "advantages of a rollout": (
        r"\bcompute_advantages\(",
        {"core/training/rollout.py", "core/objectives/advantages.py"},
    ),
    "overlong shaping": (
        r"\bsoft_overlong_penalty\(",
        {"core/training/rollout.py", "core/objectives/shaping.py"},
    ),
    "supervised batches (one SFT loop)": (
        r"\.sft_batch\(",
        {"core/training/sft.py", "core/tasks/wrappers.py"},
    ),
    "sampler settings for a task": (
        r"\bSamplingConfig\(",
        {"core/tasks/base.py", "core/distributed/selfcheck.py", "core/sampling/sampler.py"},
    ),
    "optimizer steps": (
        r"\b(tx|optimizer)\.update\(",
        # One optimizer step (state.optimizer_step, LoRA-aware) for every trainer.
        {"core/training/state.py", "core/distributed/selfcheck.py"},
    ),
    "the task registry": (r"^TASKS\s*[:=]", {"core/tasks/registry.py"}),
    "greedy evaluation": (r"temperature\s*=\s*0(\.0)?\b", {"core/tasks/evaluate.py"}),
    "the RL step": (
        r"\bupdate_phase\(|\brollout_phase\(",
        {
            "core/training/rl.py",
            "core/training/rollout.py",
            "core/training/update.py",
        },
    ),
}


def _callers(pattern: str) -> set[str]:
    rx = re.compile(pattern, re.MULTILINE)
    out = set()
    for path in SOURCES:
        code = "\n".join(
            line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
        )
        if rx.search(code):
            out.add(str(path.relative_to(ROOT)))
    return out


@pytest.mark.parametrize("piece", list(PIECES))
def test_each_trainer_piece_lives_in_one_place(piece):
    pattern, allowed = PIECES[piece]
    callers = _callers(pattern)
    assert callers, f"{piece}: its home no longer makes the call (update this test)"
    assert callers <= allowed, f"{piece} also written in {sorted(callers - allowed)}"
