"""Plots of a co-search run (matplotlib, Agg back end; PNG files under ``RUN/plots/``).

* ``alpha_beta.png``: evolution over epochs of the operator probabilities (alpha, per block: probability of the
  chosen op) and of the expected activation / weight bits per block (from beta).
* ``bits.png``: final per-layer bit allocation (activation and weight bits of the derived subnet).
* ``layer_cost.png``: final per-layer latency (ms) and energy (uJ) on the derived accelerator.
* ``cost.png``: hardware cost and accuracy over epochs (E_HW and its normalised E, L, A terms; EDAP of the
  derived design).
* ``pareto.png`` (lambda sweeps, :func:`pareto_plot`): test or search accuracy against EDAP, one point per lambda.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    tmp.replace(path)


def _expected_bits(beta_block) -> tuple[float, float] | None:
    """beta entry {"act": [p2, p4, p8], "wgt": [...]} (probabilities of the chosen op) -> expected bits."""
    if not beta_block:
        return None
    bits = np.array(beta_block.get("bits", [2, 4, 8]), dtype=float)
    return float(np.dot(beta_block["act"], bits)), float(np.dot(beta_block["wgt"], bits))


def make_plots(run: Path, metrics: list[dict], history: list[dict]) -> list[Path]:
    plt = _plt()
    out: list[Path] = []
    d = Path(run) / "plots"
    if history:
        ep = [h["epoch"] for h in history]
        nblk = len(history[-1]["alpha"])
        fig, axes = plt.subplots(1, 3, figsize=(15, 4))
        for b in range(nblk):
            axes[0].plot(ep, [max(h["alpha"][b]) for h in history], label=f"block {b}")
            eb = [_expected_bits(h["beta"][b]) if b < len(h["beta"]) else None for h in history]
            if all(x is not None for x in eb):
                axes[1].plot(ep, [x[0] for x in eb], label=f"block {b}")
                axes[2].plot(ep, [x[1] for x in eb], label=f"block {b}")
        axes[0].set(title="alpha: probability of the leading op", xlabel="epoch", ylim=(0, 1.02))
        axes[1].set(title="beta: expected activation bits", xlabel="epoch", ylim=(1.8, 8.2))
        axes[2].set(title="beta: expected weight bits", xlabel="epoch", ylim=(1.8, 8.2))
        if nblk <= 12:
            axes[0].legend(fontsize=7)
        _save(fig, d / "alpha_beta.png")
        plt.close(fig)
        out.append(d / "alpha_beta.png")

        last = history[-1]
        names = last.get("layer_names") or [str(i) for i in range(len(last["bits"]))]
        x = np.arange(len(names))
        bits = np.array(last["bits"], dtype=float).reshape(-1, 2)
        fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(names)), 4))
        ax.bar(x - 0.2, bits[:, 0], 0.4, label="activation bits")
        ax.bar(x + 0.2, bits[:, 1], 0.4, label="weight bits")
        ax.set(title="per-layer bit allocation (derived subnet)", yticks=[2, 4, 8], ylabel="bits")
        ax.set_xticks(x, names, rotation=90, fontsize=7)
        ax.legend()
        _save(fig, d / "bits.png")
        plt.close(fig)
        out.append(d / "bits.png")

        fig, axes = plt.subplots(2, 1, figsize=(max(6, 0.35 * len(names)), 6), sharex=True)
        axes[0].bar(x, last["latency_ms"])
        axes[0].set(ylabel="latency (ms)", title="per-layer cost on the derived accelerator")
        axes[1].bar(x, np.array(last["energy_pj"]) * 1e-6, color="tab:orange")
        axes[1].set(ylabel="energy (uJ)")
        axes[1].set_xticks(x, names, rotation=90, fontsize=7)
        _save(fig, d / "layer_cost.png")
        plt.close(fig)
        out.append(d / "layer_cost.png")

    metrics = [m for m in metrics if m.get("kind", "epoch") == "epoch"]
    if metrics:
        ep = [m["epoch"] for m in metrics]
        fig, axes = plt.subplots(1, 3, figsize=(15, 4))
        axes[0].plot(ep, [m["hw_cost"] for m in metrics], label="E_HW")
        for k in ("E", "L", "A"):
            axes[0].plot(ep, [m[f"hw_{k}"] for m in metrics], "--", label=f"{k} / ref")
        axes[0].set(title="hardware cost (normalised, expectation)", xlabel="epoch")
        axes[0].legend()
        axes[1].semilogy(ep, [m["derived"]["final_edap"] for m in metrics])
        axes[1].set(title="EDAP of the derived design (J s mm^2)", xlabel="epoch")
        axes[2].plot(ep, [100 * m["train_acc"] for m in metrics], label="weights split")
        axes[2].plot(ep, [100 * m["arch_acc"] for m in metrics], label="arch split")
        axes[2].set(title="supernet accuracy (%)", xlabel="epoch")
        axes[2].legend()
        _save(fig, d / "cost.png")
        plt.close(fig)
        out.append(d / "cost.png")
    return out


def pareto_plot(path: Path, points: list[dict]) -> Path:
    """Accuracy (%) against EDAP, one labelled point per lambda; the Pareto front is drawn as a step line."""
    plt = _plt()
    pts = sorted(points, key=lambda p: p["edap"])
    fig, ax = plt.subplots(figsize=(6, 4.5))
    xs = [p["edap"] for p in pts]
    ys = [100 * p["accuracy"] for p in pts]
    ax.scatter(xs, ys)
    for p, x, y in zip(pts, xs, ys):
        ax.annotate(f"λ={p['lambda']:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    front, best = [], -1.0
    for x, y in zip(xs, ys):
        if y > best:
            front.append((x, y))
            best = y
    if len(front) > 1:
        ax.step([f[0] for f in front], [f[1] for f in front], where="post", alpha=0.5)
    ax.set_xscale("log")
    ax.set(xlabel="EDAP (J s mm^2)", ylabel=f"{pts[0].get('accuracy_kind', 'accuracy')} (%)",
           title="lambda sweep: accuracy vs EDAP")
    _save(fig, Path(path))
    plt.close(fig)
    return Path(path)
