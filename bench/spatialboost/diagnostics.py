"""Stage 3 made visible: is the language loss actually reaching the encoder?

Per optimizer step `Stage3Monitor.step` records, for the encoder adapters trained in stage 3:

* ``gate_mean/min/max`` — alpha = sigmoid(a) over every dual-channel layer (0.5 at init), and
  ``gate_shift`` = max |a - a_0| (how far any gate logit has moved);
* ``attn_plus_drift`` — ||theta(Attn+) - theta(Attn)|| / ||theta(Attn)|| over all wrapped layers (0 at
  init: Attn+ starts as an exact copy); for lora / full modes the same relative distance of the
  trained encoder tensors from their values at the start of stage 3 (``adapter_drift``);
* ``encoder_grad_norm`` — the L2 norm of the encoder's gradients before clipping;
* ``supervised_tokens`` — assistant tokens the loss was averaged over.

`health` says whether stage 3 worked: the encoder got gradient, its adapters moved and (dual) the gates
moved; a broken route (e.g. the visual tokens detached; `cut_encoder_gradient` does it on purpose, for
tests) leaves every diagnostic at its initial value and the check fails. `plot` draws the four curves.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from bench.spatialboost.dual_attention import dual_layers, is_adapter_param

TOL = 1e-9  # "moved": any change a float32 optimizer step makes is far above this


class Stage3Monitor:
    def __init__(self, encoder: nn.Module, mode: str):
        self.encoder, self.mode = encoder, mode
        self.layers = dual_layers(encoder) if mode == "dual" else []
        self.gate0 = [layer.gate_logit.detach().clone() for _, layer in self.layers]
        self.trained = [(n, p) for n, p in encoder.named_parameters() if is_adapter_param(n, mode)]
        self.start = {n: p.detach().clone() for n, p in self.trained} if mode != "dual" else {}
        self.history: list[dict[str, float]] = []
        self.initial = self.snapshot(grad_norm=0.0, tokens=0)

    def grad_norm(self) -> float:
        sq = sum(float(p.grad.detach().float().pow(2).sum()) for _, p in self.trained if p.grad is not None)
        return math.sqrt(sq)

    @torch.no_grad()
    def snapshot(self, grad_norm: float, tokens: int) -> dict[str, float]:
        row: dict[str, float] = {"encoder_grad_norm": grad_norm, "supervised_tokens": float(tokens)}
        if self.layers:
            alphas = torch.cat([torch.sigmoid(layer.gate_logit.detach().float()) for _, layer in self.layers])
            row.update(gate_mean=float(alphas.mean()), gate_min=float(alphas.min()), gate_max=float(alphas.max()))
            row["gate_shift"] = max(float((layer.gate_logit.detach() - g0).abs().max())
                                    for (_, layer), g0 in zip(self.layers, self.gate0))
            diff = sq = 0.0
            for _, layer in self.layers:
                for pp, pb in zip(layer.plus.parameters(), layer.base.parameters()):
                    diff += float((pp.detach().float() - pb.detach().float()).pow(2).sum())
                    sq += float(pb.detach().float().pow(2).sum())
            row["attn_plus_drift"] = math.sqrt(diff / max(sq, 1e-30))
        else:
            diff = sum(float((p.detach().float() - self.start[n].float()).pow(2).sum()) for n, p in self.trained)
            sq = sum(float(v.float().pow(2).sum()) for v in self.start.values())
            row["adapter_drift"] = math.sqrt(diff / max(sq, 1e-30)) if sq > 0 else math.sqrt(diff)
        return row

    def step(self, grad_norm: float, tokens: int) -> dict[str, float]:
        """Call after the optimizer step with the pre-clipping encoder gradient norm and the step's tokens."""
        row = self.snapshot(grad_norm, tokens)
        self.history.append(row)
        return row

    def summary(self) -> dict:
        return {"initial": self.initial, "final": self.history[-1] if self.history else self.initial,
                "history": self.history, "health": health(self.history, self.initial)}


def health(history: list[dict[str, float]], initial: dict[str, float]) -> dict:
    """{"ok": bool, "failures": [...]}: the encoder got gradient, its adapters and gates moved, and every
    step had supervised tokens."""
    failures = []
    if not history:
        return {"ok": False, "failures": ["no stage-3 step ran"]}
    if max(h["encoder_grad_norm"] for h in history) <= TOL:
        failures.append("the encoder never received gradient (encoder_grad_norm = 0 at every step)")
    last = history[-1]
    drift = "attn_plus_drift" if "attn_plus_drift" in last else "adapter_drift"
    if abs(last[drift] - initial[drift]) <= TOL:
        failures.append(f"{drift} stayed at its initial value {initial[drift]:g}: the adapters did not move")
    if "gate_shift" in last and last["gate_shift"] <= TOL:
        failures.append("the gates stayed at their initial values (gate_shift = 0)")
    if min(h["supervised_tokens"] for h in history) <= 0:
        failures.append("a step had no supervised token")
    return {"ok": not failures, "failures": failures}


def cut_encoder_gradient(encoder: nn.Module):
    """TEST-ONLY: detach the encoder's outputs, so no gradient reaches it (what a broken stage 3 looks like).
    Returns the hook handle (``.remove()`` restores the route)."""
    from bench.encoders.base import BlockOutput, EncoderOutput

    def hook(_module, _inputs, out: EncoderOutput) -> EncoderOutput:
        return EncoderOutput(out.cls.detach(), out.patches.detach(),
                             [BlockOutput(b.cls.detach(), b.patches.detach()) for b in out.blocks])

    return encoder.register_forward_hook(hook)


def gate_metrics(stats: list[dict[str, float]]) -> dict[str, float]:
    out = {}
    for i, s in enumerate(stats):
        for k in ("mean", "min", "max"):
            out[f"alpha_{k}_l{i:02d}"] = s[k]
    if stats:
        out["alpha_mean_all"] = sum(s["mean"] for s in stats) / len(stats)
    return out


def metric_row(row: dict[str, float]) -> dict[str, float]:
    """The MLflow names of one step's diagnostics."""
    return {f"stage3_{k}": v for k, v in row.items()}


def plot(path: Path, summary: dict, title: str) -> Path | None:
    history = summary.get("history") or []
    if not history:
        return None
    from bench.viz import _pyplot

    plt = _pyplot()
    steps = list(range(1, len(history) + 1))
    fig, ax = plt.subplots(1, 4, figsize=(15, 3.2))
    if "gate_mean" in history[0]:
        ax[0].plot(steps, [h["gate_mean"] for h in history], label="mean")
        ax[0].fill_between(steps, [h["gate_min"] for h in history], [h["gate_max"] for h in history], alpha=0.3,
                           label="min..max")
        ax[0].axhline(summary["initial"]["gate_mean"], ls=":", c="grey", label="initial")
        ax[0].set(title="gate alpha = sigmoid(a)", xlabel="step")
        ax[0].legend(fontsize=7)
        drift = "attn_plus_drift"
    else:
        ax[0].set(title=f"no gates (mode {title})")
        drift = "adapter_drift"
    ax[1].plot(steps, [h[drift] for h in history])
    ax[1].set(title="||Attn+ - Attn|| / ||Attn||" if drift == "attn_plus_drift" else "adapter drift", xlabel="step")
    ax[2].plot(steps, [h["encoder_grad_norm"] for h in history])
    ax[2].set(title="encoder gradient norm", xlabel="step")
    ax[3].bar(steps, [h["supervised_tokens"] for h in history])
    ax[3].set(title="supervised tokens per step", xlabel="step")
    ok = summary["health"]["ok"]
    fig.suptitle(f"stage 3 diagnostics: {title} — health {'OK' if ok else 'FAILED'}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


__all__ = ["Stage3Monitor", "cut_encoder_gradient", "gate_metrics", "health", "metric_row", "plot"]
