"""The report's figures: matplotlib (Agg back end, no display), one PNG file each under ``OUT/figures/``.

Every function takes the dict of :func:`jaq.report.collect.collect` and returns the written path, or ``None``
when its data is absent (the page then says "not run"). Figures are written atomically (temporary file + rename).

* ``layers.png``: per-layer stacked bars: latency (cycles by instruction class), energy (pJ by component) and
  traffic (bits by buffer / off-chip), on the derived accelerator (cost-model prediction from accel.json).
* ``bits.png``: activation / weight bits of every layer.
* ``trajectory.png``: the search over epochs: hardware cost (E_HW and its E, L, A terms), EDAP of the derived
  design, supernet accuracy, and the derived bits per layer.
* ``alpha.png``: per block, the probability of each candidate op over epochs (from the checkpoint's history).
* ``beta.png``: per block, the expected activation / weight bits under softmax(beta) over epochs.
* ``accelerator_trajectory.png``: the derived accelerator's PE count and buffer sizes over epochs.
* ``pareto.png``: accuracy vs EDAP over a lambda sweep, Pareto front highlighted.
* ``area.png``: model area by component (and the Yosys figure when synthesis ran).
* ``sim_cycles.png``: per simulated layer, cycles counted by the RTL vs predicted by the model.
* ``retrain.png``: retraining loss/accuracy over epochs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from jaq.report.collect import CYCLE_PARTS, ENERGY_PARTS, TRAFFIC_PARTS

#: One palette for the whole report (colour-blind-friendly "tab10" order, muted).
PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974",
           "#64B5CD")
DPI = 100


def _plt():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                         "axes.grid": True, "grid.alpha": 0.3, "axes.titlesize": 10, "legend.fontsize": 8,
                         "legend.frameon": False, "figure.dpi": DPI})
    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=DPI, bbox_inches="tight", facecolor="white")
    os.replace(tmp, path)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path


def _int_epochs(*axes) -> None:
    """Whole-number epoch ticks."""
    from matplotlib.ticker import MaxNLocator
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _layer_labels(layers: list[dict]) -> list[str]:
    return [l["name"] for l in layers]


def _stacked(ax, x, parts: list[tuple[str, np.ndarray]], ylabel: str, title: str) -> None:
    bottom = np.zeros(len(x))
    for i, (label, vals) in enumerate(parts):
        if not np.any(vals):
            continue
        ax.bar(x, vals, 0.75, bottom=bottom, label=label, color=PALETTE[i % len(PALETTE)])
        bottom = bottom + vals
    ax.set_ylabel(ylabel)
    ax.set_title(title, loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))


def layers_figure(d: dict, out: Path) -> Path | None:
    net = d.get("network")
    if not net or not net["layers"] or all(l["cycles"] is None for l in net["layers"]):
        return None
    plt = _plt()
    layers = net["layers"]
    x = np.arange(len(layers))
    width = max(7.0, 0.45 * len(layers) + 3.0)
    en = [(lab, np.array([l["energy_pj"].get(k, 0.0) for l in layers], float) * 1e-6) for k, lab in ENERGY_PARTS]
    total = sum(v.sum() for _, v in en) or 1.0
    dram_share = sum(v.sum() for lab, v in en if lab == dict(ENERGY_PARTS)["dram"]) / total
    on_chip = dram_share > 0.8  # off-chip energy hides the rest: add an on-chip-only panel
    n = 4 if on_chip else 3
    fig, axes = plt.subplots(n, 1, figsize=(width, 2.75 * n), sharex=True)
    cyc = [(lab, np.array([l["accesses"].get(k, 0) for l in layers], float)) for k, lab in CYCLE_PARTS]
    _stacked(axes[0], x, cyc, "cycles", "latency by instruction class")
    _stacked(axes[1], x, en, "energy (µJ)", f"energy by component (off-chip DRAM {100 * dram_share:.0f} %)")
    if on_chip:
        chip = [(lab, v * 1e3) for lab, v in en if lab != dict(ENERGY_PARTS)["dram"]]
        _stacked(axes[2], x, chip, "energy (nJ)", "on-chip energy only (without DRAM)")
    tr = [(lab, np.array([l["accesses"].get(k, 0) for l in layers], float) / 8e3) for k, lab in TRAFFIC_PARTS]
    _stacked(axes[-1], x, tr, "traffic (kB)", "traffic by buffer and off-chip")
    axes[-1].set_xticks(x, _layer_labels(layers), rotation=60, ha="right", fontsize=8)
    fig.align_ylabels(axes)
    return _save(fig, out / "layers.png")


def bits_figure(d: dict, out: Path) -> Path | None:
    net = d.get("network")
    if not net or not net["layers"]:
        return None
    plt = _plt()
    layers = net["layers"]
    x = np.arange(len(layers))
    fig, ax = plt.subplots(figsize=(max(7.0, 0.45 * len(layers) + 3.0), 2.6))
    ax.bar(x - 0.2, [l["act_bits"] for l in layers], 0.4, label="activation bits", color=PALETTE[0])
    ax.bar(x + 0.2, [l["wgt_bits"] for l in layers], 0.4, label="weight bits", color=PALETTE[1])
    ax.set_yticks([2, 4, 8])
    ax.set_ylim(0, 8.8)
    ax.set_ylabel("bits")
    ax.set_title("bits per layer (derived subnet)", loc="left")
    ax.set_xticks(x, _layer_labels(layers), rotation=60, ha="right", fontsize=8)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, out / "bits.png")


def _mean_bits(bits_epoch) -> tuple[float, float] | None:
    if not bits_epoch:
        return None
    arr = np.array(bits_epoch, dtype=float).reshape(-1, 2)
    return float(arr[:, 0].mean()), float(arr[:, 1].mean())


def _group(name: str) -> str:
    """Layer name -> its block (``b3.dw`` -> ``b3``) or itself (``stem``, ``head``, ``fc``)."""
    return name.split(".", 1)[0]


def _bits_grid(t: dict):
    """(groups, act[group][epoch], wgt[group][epoch]) from the per-epoch derived bits and layer names (the
    checkpoint history); NaN where a block has no layer that epoch. None without layer names."""
    names = t.get("history_names")
    if not names or len(names) != len(t["bits"]):
        return None
    groups: list[str] = []
    for ns in names:
        for n in ns or []:
            g = _group(n)
            if g not in groups:
                groups.append(g)
    fixed_tail = [g for g in groups if not (g.startswith("b") and g[1:].isdigit()) and g != "stem"]
    body = [g for g in groups if g not in fixed_tail]
    groups = body + fixed_tail
    act = np.full((len(groups), len(names)), np.nan)
    wgt = np.full((len(groups), len(names)), np.nan)
    for j, (ns, bits) in enumerate(zip(names, t["bits"])):
        if not ns or not bits or len(ns) != len(bits):
            continue
        seen = set()
        for n, (a, w) in zip(ns, bits):
            g = _group(n)
            if g in seen or n.endswith(".skip"):
                continue
            seen.add(g)
            act[groups.index(g), j], wgt[groups.index(g), j] = a, w
    return groups, act, wgt


def trajectory_figure(d: dict, out: Path) -> Path | None:
    t = d.get("trajectory")
    if not t or not t["epochs"]:
        return None
    plt = _plt()
    ep = np.array(t["epochs"], dtype=float)
    fig, axes = plt.subplots(2, 2, figsize=(12, 6.4))
    ax = axes[0, 0]
    for key, lab, style in (("hw_cost", "E_HW (Eq. 9)", "-"), ("hw_E", "energy / ref", "--"),
                            ("hw_L", "latency / ref", "--"), ("hw_A", "area / ref", "--")):
        vals = [v if v is not None else np.nan for v in t[key]]
        ax.plot(ep, vals, style, marker="o", ms=3, label=lab)
    warm = [e for e, s in zip(ep, t["searched_arch"]) if not s]
    if warm:
        ax.axvspan(min(warm) - 0.5, max(warm) + 0.5, color="0.85", alpha=0.5, lw=0, label="warm-up (weights only)")
    ax.set(title="normalised hardware cost (expectation)", xlabel="epoch")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax = axes[0, 1]
    edap = np.array([v if v is not None else np.nan for v in t["edap"]])
    if np.any(np.isfinite(edap)) and np.nanmin(edap) > 0:
        ax.semilogy(ep, edap, marker="o", ms=3, color=PALETTE[3])
    else:
        ax.plot(ep, edap, marker="o", ms=3, color=PALETTE[3])
    ax.set(title="EDAP of the derived design (J·s·mm²)", xlabel="epoch")
    ax = axes[1, 0]
    for key, lab in (("train_acc", "weights split"), ("arch_acc", "architecture split")):
        ax.plot(ep, [100 * v if v is not None else np.nan for v in t[key]], marker="o", ms=3, label=lab)
    ax.set(title="supernet training accuracy (%)", xlabel="epoch")
    ax.legend()
    ax = axes[1, 1]
    grid = _bits_grid(t)
    if grid is not None:
        groups, act, wgt = grid
        ng = len(groups)
        img = np.concatenate([act, np.full((1, act.shape[1]), np.nan), wgt], axis=0)
        im = ax.imshow(img, aspect="auto", cmap="viridis", vmin=2, vmax=8, interpolation="nearest",
                       extent=(ep[0] - 0.5, ep[-1] + 0.5, 2 * ng + 0.5, -0.5))
        ticks = list(range(ng)) + [ng + 1 + i for i in range(ng)]
        labels = [f"a {g}" for g in groups] + [f"w {g}" for g in groups]
        ax.set_yticks(ticks, labels, fontsize=7 if ng <= 12 else 5)
        ax.grid(False)
        cb = fig.colorbar(im, ax=ax, ticks=[2, 4, 8])
        cb.set_label("bits")
        ax.set(title="derived act (a) / weight (w) bits per block over epochs (blank: skip)", xlabel="epoch")
    else:
        mean = [_mean_bits(b) for b in t["bits"]]
        ax.plot(ep, [m[0] if m else np.nan for m in mean], marker="o", ms=3, label="activation bits (mean)")
        ax.plot(ep, [m[1] if m else np.nan for m in mean], marker="o", ms=3, label="weight bits (mean)")
        ax.set(title="derived bits over epochs (mean over layers)", xlabel="epoch", ylim=(1.5, 8.5))
        ax.legend()
    _int_epochs(*axes.flat)
    fig.tight_layout()
    return _save(fig, out / "trajectory.png")


def alpha_figure(d: dict, out: Path) -> Path | None:
    t = d.get("trajectory")
    if not t or not t.get("alpha") or not t["alpha"][0]:
        return None
    plt = _plt()
    alpha = np.array(t["alpha"], dtype=float)  # epochs x blocks x ops
    ep = np.array(t["alpha_epochs"], dtype=float)
    nb, nops = alpha.shape[1], alpha.shape[2]
    ops = t.get("ops")
    if not ops or len(ops) != nops:
        try:
            from jaq.nn.space import ALL_OPS
            ops = list(ALL_OPS) if len(ALL_OPS) == nops else None
        except ImportError:  # pragma: no cover
            ops = None
    ops = ops or [f"op{i}" for i in range(nops)]
    cols = min(nb, 5)
    rows = int(np.ceil(nb / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols + 1.6, 2.1 * rows + 0.4), sharey=True, squeeze=False)
    cmap = plt.get_cmap("tab10")
    for b in range(rows * cols):
        ax = axes[b // cols, b % cols]
        if b >= nb:
            ax.set_axis_off()
            continue
        for o in range(nops):
            ax.plot(ep, alpha[:, b, o], color=cmap(o % 10), lw=1.4 if alpha[-1, b, o] == alpha[-1, b].max() else 0.8,
                    label=ops[o])
        ax.set_title(f"block {b}", fontsize=9)
        ax.set_ylim(0, min(1.02, float(alpha.max()) * 1.15 + 0.02))
        if b % cols == 0:
            ax.set_ylabel("P(op)")
    axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7)
    _int_epochs(*axes.flat)
    fig.suptitle("alpha: softmax probability of each candidate op per block, over epochs", x=0.01, ha="left",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, out / "alpha.png")


def beta_figure(d: dict, out: Path) -> Path | None:
    """Expected activation / weight bits of each block's leading op under softmax(beta), over epochs."""
    t = d.get("trajectory")
    if not t or not t.get("beta") or not t["beta"][0]:
        return None
    plt = _plt()
    ep = np.array(t["alpha_epochs"], dtype=float)
    nb = len(t["beta"][0])
    exp = np.full((len(ep), nb, 2), np.nan)
    for j, epoch in enumerate(t["beta"]):
        for b, blk in enumerate(epoch or []):
            if blk and b < nb:
                bits = np.array(blk.get("bits") or [2, 4, 8], float)
                exp[j, b, 0] = float(np.dot(blk["act"], bits))
                exp[j, b, 1] = float(np.dot(blk["wgt"], bits))
    cols = min(nb, 5)
    rows = int(np.ceil(nb / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols + 1.6, 2.0 * rows + 0.4), sharey=True, squeeze=False)
    for b in range(rows * cols):
        ax = axes[b // cols, b % cols]
        if b >= nb:
            ax.set_axis_off()
            continue
        ax.plot(ep, exp[:, b, 0], color=PALETTE[0], marker="o", ms=2, label="activation bits")
        ax.plot(ep, exp[:, b, 1], color=PALETTE[1], marker="o", ms=2, ls="--", label="weight bits")
        ax.set_title(f"block {b}", fontsize=9)
        ax.set_ylim(1.5, 8.5)
        ax.set_yticks([2, 4, 8])
        if b % cols == 0:
            ax.set_ylabel("E[bits]")
    axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7)
    _int_epochs(*axes.flat)
    fig.suptitle("beta: expected bits of each block's leading op under softmax(beta), over epochs", x=0.01,
                 ha="left", fontsize=10)
    fig.tight_layout()
    return _save(fig, out / "beta.png")


def accelerator_trajectory_figure(d: dict, out: Path) -> Path | None:
    t = d.get("trajectory")
    if not t or not t["epochs"] or not any(t["accelerator"]):
        return None
    plt = _plt()
    ep = np.array(t["epochs"], dtype=float)
    acc = t["accelerator"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 2.8))
    axes[0].plot(ep, [a["pe_x"] * a["pe_y"] if a else np.nan for a in acc], marker="o", ms=3, color=PALETTE[0])
    axes[0].set(title="PE array size (fusion units)", xlabel="epoch")
    for i, k in enumerate(("act_buf_kb", "wgt_buf_kb", "out_buf_kb")):
        axes[1].plot(ep, [a[k] if a else np.nan for a in acc], marker="o", ms=3, label=k.split("_")[0],
                     color=PALETTE[i + 1])
    axes[1].set(title="buffer sizes (KB)", xlabel="epoch")
    axes[1].legend()
    for e, a in zip(ep, acc):
        if a:
            axes[0].annotate(a["dataflow"], (e, a["pe_x"] * a["pe_y"]), fontsize=6, xytext=(0, 4),
                             textcoords="offset points", ha="center")
    _int_epochs(*axes)
    fig.tight_layout()
    return _save(fig, out / "accelerator_trajectory.png")


def pareto_figure(d: dict, out: Path) -> Path | None:
    sw = d.get("sweep")
    if not sw:
        return None
    plt = _plt()
    pts = sw["points"]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    xs = np.array([p["edap"] for p in pts], float)
    ys = np.array([100 * p["accuracy"] for p in pts], float)
    on = np.array([p.get("pareto", False) for p in pts])
    ax.scatter(xs[~on], ys[~on], color="0.6", label="dominated", zorder=3)
    ax.scatter(xs[on], ys[on], color=PALETTE[3], label="Pareto front", zorder=4)
    if on.sum() > 1:
        ax.step(xs[on], ys[on], where="post", color=PALETTE[3], alpha=0.5)
    for p, x, y in zip(pts, xs, ys):
        ax.annotate(f"λ={p['lambda']:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if np.all(xs > 0):
        ax.set_xscale("log")
    ax.set(xlabel="EDAP (J·s·mm²)", ylabel=f"{pts[0].get('accuracy_kind', 'accuracy')} (%)",
           title="lambda sweep: accuracy vs EDAP")
    ax.legend()
    return _save(fig, out / "pareto.png")


def area_figure(d: dict, out: Path) -> Path | None:
    am = d.get("area_model")
    if not am:
        return None
    plt = _plt()
    parts = am["parts_mm2"]
    ys = (d.get("build") or {}).get("yosys")
    fig, ax = plt.subplots(figsize=(6.5, 1.5 if not (ys and ys.get("area_mm2")) else 2.0))
    left = 0.0
    for i, (k, v) in enumerate(parts.items()):
        ax.barh(["model"], [v], left=left, color=PALETTE[i % len(PALETTE)], label=f"{k} ({v:.3g})")
        left += v
    if ys and ys.get("area_mm2"):
        what = "Yosys logic\n(no SRAM)" if ys.get("logic_only") else "Yosys"
        ax.barh([what], [ys["area_mm2"]], color="0.45", label=f"Yosys cells ({ys['area_mm2']:.3g})")
    ax.set_xlabel("area (mm²)")
    ax.set_title("accelerator area by component", loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.05))
    return _save(fig, out / "area.png")


def sim_figure(d: dict, out: Path) -> Path | None:
    rows = [r for r in d.get("sim_rows") or [] if r["cycles_rtl"] is not None]
    if not rows:
        return None
    plt = _plt()
    src = rows[0]["source"]
    rows = [r for r in rows if r["source"] == src]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(7.0, 0.45 * len(rows) + 3.0), 2.8))
    ax.bar(x - 0.2, [r["cycles_model"] or 0 for r in rows], 0.4, label="cost model", color=PALETTE[0])
    ax.bar(x + 0.2, [r["cycles_rtl"] or 0 for r in rows], 0.4, label="RTL counter", color=PALETTE[2])
    for i, r in enumerate(rows):
        if not r["ok"]:
            ax.annotate("✗", (i, max(r["cycles_model"] or 0, r["cycles_rtl"] or 0)), color="red", ha="center")
    ax.set_ylabel("cycles")
    ax.set_title(f"cycles per layer: model vs RTL ({src})", loc="left")
    ax.set_xticks(x, [r["name"] for r in rows], rotation=60, ha="right", fontsize=8)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, out / "sim_cycles.png")


def retrain_figure(d: dict, out: Path) -> Path | None:
    r = d.get("retrain")
    if not r or not r["epochs"]:
        return None
    plt = _plt()
    ep = [e["epoch"] for e in r["epochs"]]
    fig, ax = plt.subplots(figsize=(6.5, 2.8))
    ax.plot(ep, [e["train_loss"] for e in r["epochs"]], color=PALETTE[0], marker="o", ms=3, label="train loss")
    ax.set(xlabel="epoch", ylabel="loss", title="retraining (quantization-aware, fixed bits)")
    ax2 = ax.twinx()
    ax2.plot(ep, [100 * e["train_acc"] for e in r["epochs"]], color=PALETTE[1], marker="o", ms=3,
             label="train accuracy")
    if r.get("test") and r["test"].get("test_acc") is not None:
        ax2.axhline(100 * r["test"]["test_acc"], color=PALETTE[2], ls="--", label="test accuracy")
    ax2.set_ylabel("accuracy (%)")
    ax2.grid(False)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="center right")
    _int_epochs(ax, ax2)
    return _save(fig, out / "retrain.png")


FIGURES = {"layers": layers_figure, "bits": bits_figure, "trajectory": trajectory_figure, "alpha": alpha_figure,
           "beta": beta_figure,
           "accelerator_trajectory": accelerator_trajectory_figure, "pareto": pareto_figure, "area": area_figure,
           "sim_cycles": sim_figure, "retrain": retrain_figure}


def make_figures(d: dict, out: Path) -> dict[str, Path]:
    """Write every figure whose data is present into ``out``; returns ``{name: path}`` (absent ones left out)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, fn in FIGURES.items():
        p = fn(d, out)
        if p is not None:
            written[name] = p
        else:
            stale = out / f"{name}.png"
            if stale.is_file():
                stale.unlink()
    return written


__all__ = ["make_figures", "FIGURES"]
