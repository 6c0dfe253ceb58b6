"""PyTorch baselines for ``cliffjax.experiments.bench`` (optional: needs the ``bench`` extra).

Nothing here is imported by ``core/``; ``cliffjax.experiments.bench`` imports this module only when
``torch`` is installed. The objective formulas are written directly in PyTorch the way TRL's
``GRPOTrainer._compute_loss`` arranges them (per-token log-ratio, ``coef_1 = exp(log_ratio)``,
``coef_2 = clamp(coef_1, 1-ε_low, 1+ε_high)``, ``-min(coef_1·Â, coef_2·Â)``, ``+β·k3``, then the
``loss_type`` normaliser, plus the clip-fraction metrics TRL logs), with the project's default
hyper-parameters read from the same config dataclasses, so the JAX and PyTorch sides compute the
same numbers (``tests/experiments/test_bench.py`` checks value and gradient). DISPO and MHPO
are not in TRL; they follow the project's formulas (``core/objectives``) in the same style.

The models are Hugging Face ``LlamaForCausalLM`` with random weights and the project
transformer's sizes (RMSNorm, RoPE, SwiGLU, untied head): what a TRL user runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync() -> None:
    """Wait for queued device work (a no-op on CPU, where torch is synchronous)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


# --------------------------------------------------------------------------------------------
# Objectives
# --------------------------------------------------------------------------------------------


def _masked_mean(x: Tensor, m: Tensor) -> Tensor:
    return (x * m).sum() / m.sum().clamp(min=1.0)


def _normalise(per_token: Tensor, m: Tensor, aggregation: str, norm_constant: Any) -> Tensor:
    """TRL's loss normalisers: grpo (seq-mean-token-mean), dapo/cispo/bnpo (token-mean),
    dr_grpo (constant-normalized-sum: ``Σ / (B · max_completion_length)``)."""
    if aggregation == "seq-mean-token-mean":
        return ((per_token * m).sum(-1) / m.sum(-1).clamp(min=1.0)).mean()
    if aggregation == "token-mean":
        return (per_token * m).sum() / m.sum().clamp(min=1.0)
    if aggregation == "constant-normalized-sum":
        c = per_token.shape[1] if norm_constant is None else norm_constant
        return (per_token * m).sum() / (per_token.shape[0] * c)
    if aggregation == "seq-mean-token-sum":
        return (per_token * m).sum(-1).mean()
    raise ValueError(f"unknown aggregation {aggregation!r}")


def _k3(logp: Tensor, ref: Tensor) -> Tensor:
    d = ref - logp
    return torch.exp(d) - d - 1.0


def policy_objective(name: str, cfg: Any) -> Callable[..., tuple[Tensor, dict[str, Tensor]]]:
    """``fn(logp, logp_old, mask, adv[B], logp_ref, rewards) -> (loss, metrics)`` in PyTorch.

    ``name`` is a registered policy objective of ``cliffjax.objectives`` and ``cfg`` its config
    (the same hyper-parameters as the JAX side). Metrics are the ones TRL computes under
    ``no_grad`` for that loss type.
    """

    def clip_metrics(coef_1: Tensor, a: Tensor, m: Tensor, lo: float, hi: float):
        with torch.no_grad():
            low = ((coef_1 < lo) & (a < 0)).float()
            high = ((coef_1 > hi) & (a > 0)).float()
            return {
                "clip_ratio/low_mean": _masked_mean(low, m),
                "clip_ratio/high_mean": _masked_mean(high, m),
                "clip_ratio/region_mean": _masked_mean(torch.maximum(low, high), m),
            }

    def fn(logp, logp_old, mask, adv, logp_ref=None, rewards=None):
        m = mask.float()
        a = adv.unsqueeze(1)
        log_ratio = logp - logp_old
        metrics: dict[str, Tensor] = {}
        if name in ("grpo", "dapo", "dr_grpo", "ppo_clip", "gspo"):
            if name == "gspo":  # importance_sampling_level="sequence"
                log_ratio = ((log_ratio * m).sum(-1) / m.sum(-1).clamp(min=1.0)).unsqueeze(-1)
            coef_1 = torch.exp(log_ratio)
            lo, hi = 1 - cfg.eps_low, 1 + cfg.eps_high
            coef_2 = torch.clamp(coef_1, lo, hi)
            per_token = -torch.min(coef_1 * a, coef_2 * a)
            if name == "gspo":
                per_token = per_token.expand_as(m)
            metrics.update(clip_metrics(coef_1.expand_as(m), a.expand_as(m), m, lo, hi))
        elif name == "cispo":  # relative cap (the project's default), TRL-style detach
            coef_1 = torch.exp(log_ratio)
            if cfg.cap == "relative":
                w = torch.clamp(coef_1, 1 - cfg.eps_low, 1 + cfg.eps_high).detach()
            else:
                w = torch.clamp(coef_1, max=cfg.abs_cap).detach()
            per_token = -w * a * logp
            with torch.no_grad():
                metrics["cispo_clip_ratio"] = _masked_mean(
                    ((coef_1 > 1 + cfg.eps_high) & (a > 0)).float(), m
                )
        elif name == "dispo":
            coef_1 = torch.exp(log_ratio)
            correct = (a > 0).expand_as(m)
            lo = torch.where(correct, 1 - cfg.eps_low_pos, 1 - cfg.eps_low_neg)
            hi = torch.where(correct, 1 + cfg.eps_high_pos, 1 + cfg.eps_high_neg)
            w = torch.minimum(torch.maximum(coef_1, lo), hi).detach()
            per_token = -w * a * logp
        elif name == "mhpo":
            psi = cfg.c * torch.tanh(log_ratio / cfg.c)
            split = F.softplus if cfg.hazard_split == "softplus" else F.relu
            ps = psi.detach()
            zeta = (split(ps) / cfg.lam_pos) ** cfg.k_pos + (split(-ps) / cfg.lam_neg) ** cfg.k_neg
            per_token = -torch.exp(psi - zeta) * a
        elif name == "sapo":
            coef_1 = torch.exp(log_ratio)
            tau = torch.where(a > 0, cfg.tau_pos, cfg.tau_neg)
            per_token = -(4.0 / tau) * torch.sigmoid(tau * (coef_1 - 1.0)) * a
        else:
            raise ValueError(f"no PyTorch formula for objective {name!r}")
        if cfg.beta != 0.0:
            kl = _k3(logp, logp_ref)
            per_token = per_token + cfg.beta * kl
            with torch.no_grad():
                metrics["kl"] = _masked_mean(kl, m)
        loss = _normalise(per_token, m, cfg.aggregation, cfg.norm_constant)
        return loss, metrics

    return fn


def dpo_objective(cfg: Any) -> Callable[..., tuple[Tensor, dict[str, Tensor]]]:
    """TRL's sigmoid DPO loss (and RPO's NLL term when ``cfg`` has ``eta``) on ``[B, T]``
    per-token log-probs: ``-logsigmoid(β((Σlogp_w − Σref_w) − (Σlogp_l − Σref_l)))``."""

    def fn(lw, ll, rw, rl, mw, ml):
        cw, cl = (lw * mw).sum(-1), (ll * ml).sum(-1)
        chosen = cfg.beta * (cw - (rw * mw).sum(-1))
        rejected = cfg.beta * (cl - (rl * ml).sum(-1))
        losses = -F.logsigmoid(chosen - rejected)
        if hasattr(cfg, "eta"):
            coef = cfg.eta * cfg.beta if cfg.sft_coef_times_beta else cfg.eta
            if cfg.sft_normalization == "sum":
                nll = -cw
            elif cfg.sft_normalization == "seq_mean":
                nll = -cw / mw.sum(-1).clamp(min=1.0)
            else:
                nll = (-cw).sum() / mw.sum().clamp(min=1.0)
            losses = losses + coef * nll
        with torch.no_grad():
            metrics = {
                "rewards/chosen": chosen.mean(),
                "rewards/rejected": rejected.mean(),
                "rewards/accuracies": (chosen > rejected).float().mean(),
                "rewards/margins": (chosen - rejected).mean(),
            }
        return losses.mean(), metrics

    return fn


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def llama(
    vocab: int, d: int, layers: int, heads: int, ff: int, max_len: int, seed: int = 0
) -> torch.nn.Module:
    """A random-init Hugging Face ``LlamaForCausalLM`` with the project transformer's sizes."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=d,
        intermediate_size=ff,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_len,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=0,
    )
    model = LlamaForCausalLM(cfg).to(device())
    return model


def num_params(model: torch.nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


def make_update_step(
    model: torch.nn.Module, prompt_len: int, objective: str, obj_cfg: Any, lr: float = 1e-4
) -> Callable[[dict[str, Tensor]], Tensor]:
    """One TRL-style RL update: forward over prompt+completion (``logits_to_keep``), per-token
    log-probs and entropy of the completion, the objective, backward, global-norm clip 1.0 and
    AdamW. Returns ``step(batch) -> loss``."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    loss_fn = policy_objective(objective, obj_cfg)

    def step(batch: dict[str, Tensor]) -> Tensor:
        ids = batch["input_ids"]
        n = ids.shape[1] - prompt_len
        logits = model(input_ids=ids, logits_to_keep=n + 1).logits[:, :-1].float()
        logq = torch.log_softmax(logits, dim=-1)
        completion = ids[:, prompt_len:]
        logp = logq.gather(-1, completion.unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():
            entropy = -(logq.exp() * logq).sum(-1)
            _ = _masked_mean(entropy, batch["mask"])
        loss, _metrics = loss_fn(
            logp, batch["logp_old"], batch["mask"], batch["adv"], batch.get("logp_ref")
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.detach()

    return step


def generate(model: torch.nn.Module, prompts: Tensor, new_tokens: int, greedy: bool) -> Tensor:
    """Hugging Face ``generate`` with the KV cache, exactly ``new_tokens`` steps, no EOS stop;
    sampling at temperature 1 with no top-k/top-p filter (as the JAX sampler)."""
    from transformers import GenerationConfig

    gen = GenerationConfig(
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=not greedy,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        eos_token_id=None,
        pad_token_id=0,
        use_cache=True,
    )
    with torch.inference_mode():
        return model.generate(
            input_ids=prompts, attention_mask=torch.ones_like(prompts), generation_config=gen
        )


def matmul_gflops(n: int, reps: int = 5) -> list[float]:
    """GFLOP/s of ``n × n`` float32 matmuls (one per repetition, after a warm-up)."""
    dev = device()
    a = torch.randn(n, n, device=dev)
    b = torch.randn(n, n, device=dev)
    out = []
    for i in range(reps + 1):
        sync()
        t0 = time.perf_counter()
        c = a @ b
        sync()
        dt = time.perf_counter() - t0
        if i:
            out.append(2 * n**3 / dt / 1e9)
    del c
    return out


def to_torch(x: Any, dtype=None) -> Tensor:
    """A NumPy/JAX array as a tensor on ``device()``."""
    t = torch.from_numpy(np.array(x))
    if dtype is not None:
        t = t.to(dtype)
    return t.to(device())
