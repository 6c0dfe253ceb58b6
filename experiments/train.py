"""The main job: supervised warm start, then RL (or preference optimization) on a task.

    python -m cliffjax.experiments.train                      # = make run: SFT + GRPO on 2-digit addition
    python -m cliffjax.experiments.train algo=dapo trainer.rl.dynamic_sampling=true
    python -m cliffjax.experiments.train algo=rpo trainer.preference.source=dataset
    python -m cliffjax.experiments.train trainer.resume=true run_dir=outputs/<date>/<time>

The run directory (``run_dir``, default Hydra's ``outputs/<date>/<time>``) receives
``config.yaml`` (the validated config), ``metrics.jsonl`` (one record per step: phase, step,
reward, accuracy, entropy, KL, clip fractions, ratio stats, length, gradient norm, timings),
``checkpoints/`` (orbax), ``reward_curve.png`` and ``summary.json``; the summary is also
printed. Exit status: 0 on success, 1 when the NaN/inf guard stops the run, 2 for an invalid
config or run directory (before any compute), 130/143 when SIGINT/SIGTERM stopped it at a step
boundary (a checkpoint of that step is saved and the resume command printed; a second signal
exits at once). A damaged latest checkpoint is reported in one line and the resume falls back
to the newest intact one (docs/training.md).

Phases and PRNG keys (``seed`` -> model init, SFT data, main-phase data, update key) are fixed
functions of the seed and the step, so ``trainer.resume=true`` continues bitwise-identically.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shlex
import shutil
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from cliffjax.distributed import Layout, is_main_process, make_mesh
from cliffjax.distributed.multihost import maybe_initialize_distributed
from cliffjax.experiments.app import CONFIG_ERROR, RUNTIME_ERROR, hydra_app
from cliffjax.experiments.config import (
    ConfigError,
    ExperimentConfig,
    build_config,
    experiment_to_dict,
    make_task,
    register_configs,
)
from cliffjax.models.build import build_policy
from cliffjax.models.llama import export_hf
from cliffjax.models.lora import count_trainable, fold_adapters, has_adapters
from cliffjax.models.policy import param_count
from cliffjax.objectives import get_objective
from cliffjax.tasks.evaluate import completion_table, evaluate_sampled
from cliffjax.training.checkpoint import Checkpointer, NoIntactCheckpoint
from cliffjax.training.evaluation import make_evaluator
from cliffjax.training.guards import NonFiniteError
from cliffjax.training.loggers import RunLogger
from cliffjax.training.loop import Phase, run_phase
from cliffjax.training.metrics import read_metrics, to_host, truncate_metrics
from cliffjax.training.preference import make_preference_step_fn, preference_optimizer
from cliffjax.training.program import RLProgram
from cliffjax.training.rl import make_rl_step_fn
from cliffjax.training.run_dir import RunDirError, prepare_run_dir
from cliffjax.training.sft import make_sft_step_fn, sft_optimizer
from cliffjax.training.signals import Interrupted, StopRequest
from cliffjax.training.state import commit_to_device, init_state

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "generation_config.json",
)
PHASE_ORDER = {"init": 0, "sft": 1, "rl": 2, "preference": 2}
SFT_WATCH = ("loss", "grad_norm")
MAIN_WATCH = ("loss", "grad_norm", "loss_first", "loss_last")


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What :func:`run` returns (and ``summary.json`` holds).

    Attributes:
      summary: the summary dict.
      params: final policy parameters.
      reference: the frozen reference (warm-start) parameters; ``None`` with LoRA adapters
        (the reference is ``params`` with the adapters off).
    """

    summary: dict[str, Any]
    params: Any
    reference: Any


def _copy(tree: Any) -> Any:
    # Fresh buffers: the main phase donates its state, which must not free the reference.
    return jax.tree.map(jnp.copy, tree)


_fold = jax.jit(fold_adapters, static_argnums=1)


def _keys(seed: int) -> dict[str, jax.Array]:
    names = ("model", "sft_data", "sft_state", "main_data", "main_state")
    return dict(zip(names, jax.random.split(jax.random.PRNGKey(seed), len(names))))


class RunEvaluator:
    """The evaluation of a run: greedy accuracy / reward / length on the held-out set, plus,
    with ``trainer.eval.n_samples > 0``, ``eval_pass@k`` and ``eval_mean@n`` per reward
    component over sampled completions; queues a table of ``trainer.logging.samples`` greedy
    completions on ``logger`` (set by the job) for the logging backends."""

    def __init__(self, exp: ExperimentConfig, graphdef: Any, task: Any, layout: Any) -> None:
        self.greedy = make_evaluator(graphdef, task, layout=layout)
        self.graphdef, self.task = graphdef, task
        self.eval_cfg, self.n_rows = exp.trainer.eval, exp.trainer.logging.samples
        self.key = jax.random.fold_in(jax.random.key(exp.seed), 7)
        self.calls = 0
        self.logger: RunLogger | None = None

    def __call__(self, params: Any) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.greedy(params))
        e = self.eval_cfg
        self.calls += 1
        if e.n_samples:
            sampled = evaluate_sampled(
                self.graphdef,
                params,
                self.task,
                jax.random.fold_in(self.key, self.calls),
                e.n_samples,
                e.ks,
                e.temperature,
                e.top_p,
                e.batch_size,
            )
            out.update({f"eval_{k}": v for k, v in sampled.items() if k != "n"})
        if self.logger is not None and self.n_rows and self.logger.enabled:
            self.logger.queue_samples(
                completion_table(self.graphdef, params, self.task, self.n_rows)
            )
        return out


def make_layout(exp: ExperimentConfig) -> Layout | None:
    """The mesh layout of ``exp.mesh`` (docs/scaling.md), or ``None`` (plain ``jax.jit``) for
    one device."""
    if exp.mesh.axis_sizes(jax.device_count()) == (1, 1, 1):
        return None
    return Layout(make_mesh(exp.mesh), exp.mesh.rules)


def run(exp: ExperimentConfig, run_dir: str, stop: StopRequest | None = None) -> RunResult:
    """Run the whole job in ``run_dir``.

    Raises ``NonFiniteError`` from the guard, ``RunDirError`` when ``run_dir`` cannot be used
    (nothing computed) and ``Interrupted`` when ``stop`` was requested (a checkpoint of the
    step just finished has been saved).
    """
    t_start = time.perf_counter()
    cfg = exp.trainer
    prepare_run_dir(
        run_dir,
        experiment_to_dict(exp),
        resume=cfg.resume,
        overwrite=cfg.overwrite,
        resume_allow=cfg.resume_allow,
        write=is_main_process(),
    )
    os.makedirs(run_dir, exist_ok=True)
    task = make_task(exp.task)
    spec = get_objective(exp.algo.name)
    keys = commit_to_device(_keys(exp.seed))
    graphdef, params0 = build_policy(exp.model, keys["model"])
    params0 = commit_to_device(params0)
    layout = make_layout(exp)
    if layout is not None:  # sharded: parameters by the rules, keys replicated
        params0 = layout.place(params0)
        keys = layout.place(keys, "replicated")
    evaluate = RunEvaluator(exp, graphdef, task, layout)
    ckpt = Checkpointer(os.path.join(run_dir, "checkpoints"), cfg.checkpoint.keep)
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    info: dict[str, Any] = {}
    timings: dict[str, float] = {}
    is_pref = spec.kind == "preference"
    main_name = "preference" if is_pref else "rl"
    main_cfg = cfg.preference if is_pref else cfg.rl
    sft = cfg.sft
    program = None if is_pref else RLProgram(graphdef, task, spec, exp.algo.config, main_cfg)
    main_tx = preference_optimizer(main_cfg) if is_pref else program.optimizer()

    # With LoRA adapters no reference copy is kept or checkpointed: the reference is the base
    # weights inside the state, read with the adapters off (cliffjax.models.lora).
    lora = has_adapters(params0)
    ref_template = None if lora else params0

    def sft_template() -> Any:
        return init_state(_copy(params0), sft_optimizer(sft), keys["sft_state"], layout=layout)

    def template(meta: dict[str, Any]) -> tuple[Any, Any]:
        """State and reference templates of a checkpoint (its phase fixes the optimizer)."""
        if meta.get("phase") == "sft":
            return sft_template(), ref_template
        if meta.get("phase") == main_name:
            return init_state(params0, main_tx, keys["main_state"], layout=layout), ref_template
        raise RunDirError(
            f"resume of {run_dir} refused: its latest checkpoint is from phase "
            f"{meta.get('phase')!r}, this config runs {main_name!r}"
        )

    latest, restored, meta = None, None, {}
    if cfg.resume:
        try:
            found = ckpt.restore_latest_intact(
                template, lambda line: print(f"resume: {line}", file=sys.stderr)
            )
        except NoIntactCheckpoint as e:
            ckpt.close()
            raise RunDirError(
                f"resume of {run_dir} refused: {e}; start over with trainer.overwrite=true"
            ) from None
        except BaseException:
            ckpt.close()
            raise
        if found is None:
            print(f"resume: no checkpoint in {ckpt.directory}; starting fresh", file=sys.stderr)
        else:
            latest, restored_state, restored_ref, meta = found
            restored = (restored_state, restored_ref)
    if meta:
        done = (PHASE_ORDER[meta["phase"]], meta["step"])
        if is_main_process():
            truncate_metrics(metrics_path, lambda r: (PHASE_ORDER[r["phase"]], r["step"]) <= done)
        print(f"resume: checkpoint {latest} ({meta['phase']} step {meta['step']})", file=sys.stderr)
    elif is_main_process() and os.path.exists(metrics_path):
        os.remove(metrics_path)
    writer = RunLogger(run_dir, cfg.logging, experiment_to_dict(exp), enabled=is_main_process())
    evaluate.logger = writer
    info.update(meta.get("info", {}))
    try:
        # --- initial evaluation (random init) ------------------------------------------------
        if not meta:
            info["eval_accuracy_init"] = to_host(evaluate(params0))["eval_accuracy"]
            info["n_params"] = param_count(params0)
            info["n_trainable"] = count_trainable(params0)
            writer.write("init", 0, {"eval_accuracy": info["eval_accuracy_init"]})

        # --- supervised warm start ------------------------------------------------------------
        if meta.get("phase", "sft") == "sft":
            start = 0
            if meta:
                state = restored[0]
                start = meta["step"]
            else:
                state = sft_template()
            t0 = time.perf_counter()
            phase = Phase(
                name="sft",
                offset=0,
                steps=sft.steps,
                step_fn=make_sft_step_fn(graphdef, task, sft, keys["sft_data"], layout=layout),
                watch=SFT_WATCH,
                postfix=("loss", "token_acc"),
            )
            state, sft_eval = run_phase(
                phase,
                state,
                ref_template,
                start,
                cfg=cfg,
                checkpointer=ckpt,
                writer=writer,
                evaluate=evaluate,
                meta={"info": info},
                stop=stop,
            )
            timings["sft_time_s"] = time.perf_counter() - t0
            warm = state.params
            if not sft_eval:  # no SFT step ran in this process (resumed at its end, or 0 steps)
                sft_eval = to_host(evaluate(warm))
            info["eval_accuracy_before"] = sft_eval["eval_accuracy"]
            main_start = 0
            if lora:
                # The adapters learnt in the warm start move into the base weights and start
                # again from B = 0, so "adapters off" (the RL reference) is the warm policy.
                if sft.steps:
                    warm = _fold(warm, exp.model.lora.scale)
                reference = None
            else:
                reference = _copy(warm)
            main_state = init_state(warm, main_tx, keys["main_state"], layout=layout)
        else:  # resumed inside the main phase
            main_state, reference = restored
            main_start = meta["step"]

        # --- main phase: RL or preference ---------------------------------------------------
        if is_pref:
            step_fn = make_preference_step_fn(
                graphdef,
                task,
                spec,
                exp.algo.config,
                main_cfg,
                reference,
                keys["main_data"],
                layout=layout,
            )
            postfix = ("loss", "reward_accuracy", "reward_mean")
        else:
            step_fn = make_rl_step_fn(
                program,
                reference,
                keys["main_data"],
                kl_every=cfg.kl_every,
                nan_at_step=cfg.nan_at_step,
                layout=layout,
            )
            postfix = ("reward_mean",)
        t0 = time.perf_counter()
        phase = Phase(
            name=main_name,
            offset=sft.steps,
            steps=main_cfg.steps,
            step_fn=step_fn,
            watch=MAIN_WATCH,
            postfix=postfix,
        )
        main_state, last_eval = run_phase(
            phase,
            main_state,
            reference,
            main_start,
            cfg=cfg,
            checkpointer=ckpt,
            writer=writer,
            evaluate=evaluate,
            meta={"info": info},
            stop=stop,
        )
        timings["main_time_s"] = time.perf_counter() - t0
        if not last_eval:
            last_eval = to_host(evaluate(main_state.params))
    finally:
        writer.close()
        ckpt.close()

    timings["total_time_s"] = time.perf_counter() - t_start
    if not is_main_process():
        return RunResult({}, main_state.params, reference)
    summary = _summary(exp, run_dir, info, last_eval, timings, main_name, ckpt.directory)
    if cfg.export_hf:
        summary["hf_export"] = export_policy(exp, graphdef, main_state.params, run_dir)
    with open(os.path.join(run_dir, "summary.json"), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2)
    _plot(
        metrics_path,
        os.path.join(run_dir, "reward_curve.png"),
        main_name,
        exp.algo.name,
        info.get("eval_accuracy_before"),
    )
    return RunResult(summary, main_state.params, reference)


def export_policy(exp: ExperimentConfig, graphdef: Any, params: Any, run_dir: str) -> str:
    """Write ``params`` to ``<run_dir>/hf_export`` as a Hugging Face checkpoint (LoRA adapters
    merged, float32) with the source checkpoint's tokenizer and generation files; returns the
    directory (``transformers.AutoModelForCausalLM.from_pretrained`` and vLLM read it)."""
    out = os.path.join(run_dir, "hf_export")
    export_hf(graphdef, params, out, dtype="float32")
    for name in TOKENIZER_FILES:
        src = os.path.join(exp.model.path, name)
        if os.path.isfile(src):
            shutil.copy(src, os.path.join(out, name))
    return os.path.abspath(out)


def _summary(exp, run_dir, info, last_eval, timings, main_name, ckpt_dir) -> dict[str, Any]:
    records = read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    main = [r for r in records if r["phase"] == main_name and r["step"] > 1]

    def median(key):
        vals = [float(r[key]) for r in main if key in r]
        return float(np.median(vals)) if vals else None

    return {
        "algo": exp.algo.name,
        "task": exp.task.name,
        "seed": exp.seed,
        "n_params": info.get("n_params"),
        "n_trainable": info.get("n_trainable"),
        "eval_accuracy_init": info.get("eval_accuracy_init"),
        "eval_accuracy_before": info.get("eval_accuracy_before"),
        "eval_accuracy_after": last_eval.get("eval_accuracy"),
        **{k: round(v, 2) for k, v in timings.items()},
        "median_step_time_s": median("step_time"),
        "median_tokens_per_s": median("tokens_per_s"),
        "median_sample_tokens_per_s": median("sample_tokens_per_s"),
        "median_update_tokens_per_s": median("update_tokens_per_s"),
        "run_dir": os.path.abspath(run_dir),
        "metrics": os.path.abspath(os.path.join(run_dir, "metrics.jsonl")),
        "reward_curve": os.path.abspath(os.path.join(run_dir, "reward_curve.png")),
        "checkpoints": ckpt_dir,
    }


def _plot(
    metrics_path: str, out_path: str, main_name: str, algo: str, acc_before: float | None
) -> None:
    """Reward (mean over the batch, smoothed) and held-out accuracy per main-phase step; the
    accuracy after the warm start is drawn at step 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in read_metrics(metrics_path) if r["phase"] == main_name]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    steps = [r["step"] for r in records if "reward_mean" in r]
    if steps:
        reward = np.array([float(r["reward_mean"]) for r in records if "reward_mean" in r])
        w = max(1, len(reward) // 30)
        smooth = np.convolve(reward, np.ones(w) / w, mode="valid")
        ax.plot(steps, reward, color="C0", alpha=0.25, lw=0.8)
        ax.plot(steps[w - 1 :], smooth, color="C0", label=f"train reward (mean, {w}-step avg)")
    ev = [(r["step"], float(r["eval_accuracy"])) for r in records if "eval_accuracy" in r]
    if acc_before is not None:
        ev = [(0, float(acc_before)), *ev]
    if ev:
        ax.plot(*zip(*ev), "o-", color="C3", label="held-out greedy accuracy")
    ax.set_xlabel(f"{main_name} step")
    ax.set_ylabel("reward / accuracy")
    ax.set_title(f"{algo}: reward and held-out accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)


def format_summary(s: dict[str, Any]) -> str:
    """The short text summary printed at the end of a run."""

    def pct(x):
        return "n/a" if x is None else f"{x:.3f}"

    lines = [
        f"== {s['algo']} on {s['task']} (seed {s['seed']}, {s['n_params']} params) ==",
        f"held-out greedy accuracy: init {pct(s['eval_accuracy_init'])} -> after warm start "
        f"{pct(s['eval_accuracy_before'])} -> after {s['algo']} {pct(s['eval_accuracy_after'])}",
        f"time: total {s.get('total_time_s')} s (warm start {s.get('sft_time_s', 'n/a')} s, "
        f"{s['algo']} {s.get('main_time_s')} s); median step {pct(s['median_step_time_s'])} s, "
        f"{s['median_tokens_per_s'] or 0:.0f} sampled tokens/s per step"
        + (
            f" (sampler {s['median_sample_tokens_per_s']:.0f} tokens/s, update "
            f"{s['median_update_tokens_per_s']:.0f} tokens/s)"
            if s.get("median_update_tokens_per_s")
            else ""
        ),
        f"metrics:     {s['metrics']}",
        f"reward plot: {s['reward_curve']}",
        f"checkpoints: {s['checkpoints']}",
    ]
    return "\n".join(lines)


def resume_command(run_dir: str) -> str:
    """The command that continues this job: the same overrides plus
    ``trainer.resume=true run_dir=<absolute run_dir>``."""
    keep = [
        o
        for o in HydraConfig.get().overrides.task
        if not o.lstrip("+~").startswith(("run_dir=", "trainer.resume=", "trainer.overwrite="))
    ]
    args = [*keep, "trainer.resume=true", f"run_dir={os.path.abspath(run_dir)}"]
    return " ".join(["python -m cliffjax.experiments.train", *(shlex.quote(a) for a in args)])


register_configs()


@hydra_app("config")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (``python -m cliffjax.experiments.train``); exit statuses as in
    :mod:`cliffjax.experiments.app` (0, 1 non-finite loss, 2 invalid config or run directory,
    130/143 stopped by SIGINT/SIGTERM with a checkpoint saved)."""
    for name in ("absl", "jax", "orbax"):  # Hydra's job logging is INFO; keep the terminal clean
        logging.getLogger(name).setLevel(logging.WARNING)
    # Multi-process runs must initialise before anything touches devices (building a task does).
    maybe_initialize_distributed(OmegaConf.to_container(cfg.mesh, resolve=True))
    try:
        exp = build_config(cfg)
        try:
            exp.mesh.axis_sizes(jax.device_count())
        except ValueError as e:
            raise ConfigError(f"mesh: {e}") from e
    except ConfigError as e:
        print(f"invalid config: {e}", file=sys.stderr)
        sys.exit(CONFIG_ERROR)
    run_dir = exp.run_dir or HydraConfig.get().runtime.output_dir
    stop = StopRequest()
    try:
        with stop.installed():
            result = run(exp, run_dir, stop)
    except RunDirError as e:
        print(f"invalid run directory: {e}", file=sys.stderr)
        sys.exit(CONFIG_ERROR)
    except NonFiniteError as e:
        print(f"stopped: {e}", file=sys.stderr)
        sys.exit(RUNTIME_ERROR)
    except Interrupted as e:
        print(f"{e}; resume with:\n  {resume_command(run_dir)}", file=sys.stderr)
        sys.exit(e.exit_status)
    if is_main_process():
        print(format_summary(result.summary))


if __name__ == "__main__":
    main()
