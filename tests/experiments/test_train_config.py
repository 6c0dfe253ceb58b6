"""The Hydra schema of the main job: every option composes and builds; bad keys, types and
values fail at load naming the field."""

import json
import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from cliffjax.experiments.config import ConfigError, build_config, register_configs
from cliffjax.models.build import HFModelConfig
from cliffjax.objectives import get_objective, list_objectives

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CONF = os.path.join(ROOT, "conf")


@pytest.fixture(scope="module")
def load():
    register_configs()

    def _load(*overrides):
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))

    return _load


def test_defaults_are_the_calibrated_run(load):
    exp = build_config(load())
    assert exp.algo.name == "grpo" and exp.task.name == "addition"
    assert (exp.model.d_model, exp.model.n_layers, exp.model.n_heads, exp.model.d_ff) == (
        128,
        2,
        4,
        512,
    )
    assert exp.model.vocab_size == 20
    rl = exp.trainer.rl
    assert (rl.prompts_per_step, rl.group_size, rl.epochs, rl.minibatches) == (32, 8, 2, 1)
    assert (exp.trainer.sft.steps, exp.trainer.sft.batch_size, rl.steps) == (600, 128, 600)
    assert rl.optim.lr == 1e-4 and exp.trainer.sft.optim.lr == 1e-3


def test_every_objective_has_an_algo_option(load):
    files = {f[:-5] for f in os.listdir(os.path.join(CONF, "algo")) if f.endswith(".yaml")}
    assert set(list_objectives()) <= files
    for name in sorted(files):
        exp = build_config(load(f"algo={name}"))
        spec = get_objective(name)
        assert exp.algo.name == name
        assert exp.algo.config == spec.default_config  # defaults come from the registry


def _options(group):
    return sorted(f[:-5] for f in os.listdir(os.path.join(CONF, group)) if f.endswith(".yaml"))


@pytest.mark.parametrize("task", [t for t in _options("task") if t != "jsonl"])
def test_every_task_option_builds(load, task):
    exp = build_config(load(f"task={task}"))
    assert exp.task.name == task


def test_text_task_without_its_files_fails_naming_them(load, tmp_path):
    with pytest.raises(ConfigError, match=r"task\.path.* must name a \.jsonl"):
        build_config(load("task=jsonl"))
    with pytest.raises(ConfigError, match=r"task: dataset file .*nothing\.jsonl does not exist"):
        build_config(load("task=jsonl", f"task.path={tmp_path}/nothing.jsonl"))
    (tmp_path / "d.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n' * 3)
    with pytest.raises(ConfigError, match=r"task\.tokenizer: a directory with tokenizer\.json"):
        build_config(load("task=jsonl", f"task.path={tmp_path}/d.jsonl", "task.n_eval=1"))


@pytest.mark.parametrize(
    "override",
    [f"model={o}" for o in _options("model") if o != "hf"]
    + [f"trainer={o}" for o in _options("trainer")],
)
def test_every_model_and_trainer_option_builds(load, override):
    build_config(load(override))


def test_model_hf_needs_a_path(load, tmp_path):
    with pytest.raises(ConfigError, match=r"model\.path"):
        build_config(load("model=hf"))
    with pytest.raises(ConfigError, match=r"model\.path: no config\.json"):
        build_config(load("model=hf", f"model.path={tmp_path}"))
    hf = dict(model_type="qwen2", vocab_size=20, hidden_size=8, intermediate_size=16)
    hf.update(num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=64)
    (tmp_path / "config.json").write_text(json.dumps(hf))
    exp = build_config(load("model=hf", f"model.path={tmp_path}", "model.dtype=bfloat16"))
    assert exp.model == HFModelConfig(str(tmp_path), dtype="bfloat16", param_dtype="float32")


def test_overrides_are_typed_and_validated(load):
    exp = build_config(load("algo=dapo", "algo.eps_high=0.3", "trainer.rl.dynamic_sampling=true"))
    assert exp.algo.config.eps_high == 0.3 and exp.trainer.rl.dynamic_sampling
    with pytest.raises(ConfigCompositionException) as e:
        load("trainer.rl.stepz=3")
    assert "trainer.rl.stepz" in str(e.value)
    with pytest.raises(ConfigCompositionException) as e:
        load("trainer.rl.steps=abc")
    assert "trainer.rl.steps" in str(e.value.__cause__)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (["trainer.rl.minibatches=3"], "trainer.rl.minibatches"),
        (["trainer.sft.optim.lr=-1"], "trainer.sft.optim.lr"),
        (["algo=dapo", "algo.eps_high=-0.1"], "algo.eps_high"),
        (["algo=grpo", "algo.kl_estimator=k9"], "algo.kl_estimator"),
        (["+algo.not_a_field=1"], "algo.not_a_field"),
        (["model.max_seq_len=4"], "model.max_seq_len"),
        (["trainer.rl.overlong_buffer=9"], "trainer.rl.overlong_buffer"),
        (["task.n_digits=7"], "task.n_digits"),
        (["trainer.rl.group_size=1"], "trainer.rl.group_size"),
        (["trainer.rl.group_size=1", "trainer.rl.advantage=rloo"], "trainer.rl.group_size"),
        (["trainer.rl.optim.lr=inf"], "trainer.rl.optim.lr"),
        (["trainer.sft.optim.b2=nan"], "trainer.sft.optim.b2"),
        (["task=multi_reward", "task.w_format=inf"], "task.w_format"),
        (["algo=dapo", "algo.eps_high=-inf"], "algo.eps_high"),
        (["algo.kl_estimator=k1"], "algo.kl_estimator"),
        (["+foo=1"], "foo"),
        (
            ["algo=dpo", "task=many_answers", "trainer.preference.source=dataset"],
            "trainer.preference.source",
        ),
    ],
)
def test_bad_value_fails_naming_the_field(load, overrides, field):
    with pytest.raises(ConfigError) as e:
        build_config(load(*overrides))
    assert str(e.value).startswith(field)


def test_refusals_name_the_estimator_and_the_rule(load):
    with pytest.raises(ConfigError, match=r"'group_std' advantage estimator \(the default of"):
        build_config(load("trainer.rl.group_size=1"))
    with pytest.raises(ConfigError, match=r"'rloo' advantage estimator \(trainer.rl.advantage\)"):
        build_config(load("trainer.rl.group_size=1", "trainer.rl.advantage=rloo"))
    with pytest.raises(ConfigError, match=r"expected gradient is 0.*algo.beta=0"):
        build_config(load("algo.kl_estimator=k1"))
    with pytest.raises(
        ConfigError, match=r"^trainer.rl.optim.lr: must be a finite number, got inf"
    ):
        build_config(load("trainer.rl.optim.lr=inf"))
    # k1 without a KL term is harmless; G = 1 is fine for a preference objective
    assert build_config(load("algo.kl_estimator=k1", "algo.beta=0")).algo.config.beta == 0
    build_config(load("algo=dpo", "trainer.rl.group_size=1"))


def test_cli_rejects_bad_value_before_compute(tmp_path):
    """`python -m cliffjax.experiments.train` exits 2 naming the field, and writes no run artefacts."""
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cliffjax.experiments.train",
            "trainer.rl.minibatches=3",
            f"run_dir={run_dir}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert proc.returncode == 2, proc.stderr
    assert "trainer.rl.minibatches" in proc.stderr
    assert not (run_dir / "metrics.jsonl").exists() and not (run_dir / "checkpoints").exists()


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_model_options_are_the_presets(load, preset):
    """conf/model/<preset>.yaml and the preset of the model code are one set of numbers."""
    from cliffjax.models.transformer import PRESETS

    model = build_config(load(f"model={preset}")).model
    assert {k: getattr(model, k) for k in PRESETS[preset]} == PRESETS[preset]


def test_cliff_jobs_on_text_tasks_need_a_text_perturbation(tmp_path):
    """A text task has no enumerable answer set: the digit sweeps' perturbations are refused
    and the message points at the text preset."""
    pytest.importorskip("tokenizers")
    from cliffjax.experiments.cliff_config import build_cliff_config, register_cliff_configs
    from cliffjax.experiments.tiny_checkpoint import write_tokenizer

    write_tokenizer(str(tmp_path / "tok"), ["q answer 1 #### 2 3"] * 20, 300)
    (tmp_path / "d.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n' * 3)
    register_cliff_configs()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(
            config_name="policy_cliff",
            overrides=[
                "task=jsonl",
                f"task.path={tmp_path}/d.jsonl",
                "task.n_eval=1",
                "task.max_new_tokens=4",
                "model.max_seq_len=512",
                f"task.tokenizer={tmp_path / 'tok'}",
            ],
        )
    with pytest.raises(ConfigError, match=r"sweep\.perturbation: a text sweep .*conf/sweep/text"):
        build_cliff_config(cfg)
