"""Copy the golden entries the objective tests use from a directory of golden outputs into this
folder.

Run from the repository root: ``python tests/core/objectives/golden/extract.py <golden dir>``.
The source files (tunix 0.1.7 and TRL 1.16.0 outputs on fixed inputs, with a README mapping
their names to formulas) were computed outside this repository; only the entries used by the
tests are kept, unchanged.
"""

import json
import pathlib
import sys

KEEP = {
    "tunix.json": {
        "advantages": lambda k: not k.startswith("gae"),
        "kl": lambda k: True,
        "aggregate_loss": lambda k: True,
        "policy_loss": lambda k: k.startswith(("grpo/", "gspo-token/", "ppo/")),
        "dpo": lambda k: k in ("dpo",),
        "misc": lambda k: k == "dapo_reward_shaping",
    },
    "trl.json": {
        "utils": lambda k: k.startswith("nanstd"),
        "rewards": lambda k: k == "soft_overlong_punishment",
        "grpo_compute_loss": lambda k: (
            k.split("/")[0] in ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo")
        ),
        "dpo_compute_loss": lambda k: k in ("sigmoid", "sigmoid+sft"),
    },
}
INPUT_FIELDS = (
    "B", "T", "G", "logp_new", "logp_old", "logp_ref", "mask", "lengths", "rewards_binary",
    "rewards_cont", "advantages", "per_token_loss", "dpo", "overlong",
)  # fmt: skip


def main(src: str) -> None:
    src_dir = pathlib.Path(src)
    out = pathlib.Path(__file__).parent
    inputs = json.loads((src_dir / "inputs.json").read_text())
    case = inputs["cases"]["seed0"]
    small = {"description": inputs["description"], "seed0": {k: case[k] for k in INPUT_FIELDS}}
    (out / "inputs.json").write_text(json.dumps(small))
    for name, sections in KEEP.items():
        full = json.loads((src_dir / name).read_text())
        case = full["cases"]["seed0"]
        kept = {
            sec: {k: v for k, v in case[sec].items() if keep(k)} for sec, keep in sections.items()
        }
        (out / name).write_text(json.dumps({"meta": full["meta"], "seed0": kept}))


if __name__ == "__main__":
    main(sys.argv[1])
