"""Whole network on the simulated accelerator, layer by layer.

Each layer of an integer network (:class:`jaq.nn.integer.IntegerNet`) runs as one program on the Verilator
model of the accelerator (one build for the whole network). A layer whose ``Layer.out_bits`` is the consumer's
bits (or the classifier) is finished on chip: its output unit applies the layer's constants
(:attr:`IntLayer.requant`) and writes the next layer's integers (the logits). A residual block's last conv and
the head (pooling) still write 32-bit accumulators that the host finishes with the same function
(:meth:`IntLayer.requantize`): each is one *host operation*, counted in the result. The host also pads each
layer's input (:func:`jaq.nn.integer.pad_input`). The final logits must equal the PyTorch integer model's
(:meth:`IntegerNet.run`) exactly, since both apply the same integer arithmetic (jaq.hw.requant).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from jaq.errors import JaqError
from jaq.hw.records import Accelerator, Tiling
from sim.reference import LayerData, layer_reference


@dataclass
class NetworkResult:
    """Logits from the simulated accelerator and from the integer model; per-layer reports (sim.harness)."""

    logits_rtl: np.ndarray
    logits_model: np.ndarray
    layer_reports: list = field(default_factory=list)
    build_seconds: float = 0.0
    sim_seconds: float = 0.0
    simulated_cycles: int = 0
    #: layers whose outputs the host finished (residual adds and pooling, docs/execution-model.md section 7.2)
    host_ops: int = 0

    @property
    def logits_equal(self) -> bool:
        return self.logits_rtl.shape == self.logits_model.shape and bool(np.array_equal(self.logits_rtl,
                                                                                      self.logits_model))

    @property
    def ok(self) -> bool:
        return self.logits_equal and all(r.ok for r in self.layer_reports)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "logits_equal": self.logits_equal, "logits_rtl": self.logits_rtl.tolist(),
                "logits_model": self.logits_model.tolist(), "build_seconds": self.build_seconds,
                "sim_seconds": self.sim_seconds, "simulated_cycles": self.simulated_cycles, "host_ops": self.host_ops,
                "layers": [r.to_dict() for r in self.layer_reports]}


def check_chain(inet) -> None:
    """One-line :class:`JaqError` naming the layer and the field when the layers of ``inet`` do not chain: a
    layer's input channels and size must be its source tensor's, a residual must match the output's shape, and a
    layer finished on chip must write its consumer's bits (``out_bits``/``out_signed``)."""
    from jaq.nn.space import conv_out_size

    shapes = [(inet.layers[0].layer.in_ch, None)]  # (channels, spatial size) per tensor; the input's size is free
    for j, L in enumerate(inet.layers):
        lay, where = L.layer, f"layers[{j}] ({L.layer.name or L.layer.kind})"
        if not 0 <= L.src < len(shapes):
            raise JaqError(f"{where}: source tensor {L.src} does not exist yet", "src")
        c, size = shapes[L.src]
        if lay.in_ch != c:
            raise JaqError(f"{where}: in_ch {lay.in_ch} but its input tensor has {c} channels", "in_ch")
        if size is not None and not L.pool and lay.kind != "fc" and conv_out_size(size, lay.kernel, lay.stride) != lay.out_h:
            raise JaqError(f"{where}: out_h {lay.out_h} but a {size}x{size} input at kernel {lay.kernel}, stride "
                           f"{lay.stride} gives {conv_out_size(size, lay.kernel, lay.stride)}", "out_h")
        out_size = 1 if L.pool else lay.out_h
        if L.residual_src is not None and shapes[L.residual_src] != (lay.out_ch, lay.out_h):
            raise JaqError(f"{where}: residual tensor {L.residual_src} has shape {shapes[L.residual_src]}, the "
                           f"output ({lay.out_ch}, {lay.out_h})", "residual_src")
        if on_chip(L) and L.out_bits is not None and (lay.out_bits, lay.out_signed) != (L.out_bits, L.out_signed):
            raise JaqError(f"{where}: writes {lay.out_bits}-bit outputs but its consumer reads {L.out_bits}-bit "
                           f"ones", "out_bits")
        shapes.append((lay.out_ch, out_size))


def on_chip(L) -> bool:
    """Whether the accelerator finishes layer ``L`` (an IntLayer): its output unit writes the consumer's
    integers (or the logits); else it writes 32-bit accumulators for the host."""
    return L.layer.out_bits != 32 or L.out_bits is None


def unit_constants(L):
    """The output-unit constants layer ``L`` runs with on the accelerator: its own, or the identity."""
    from jaq.hw.requant import Requant

    return L.requant if on_chip(L) else Requant.identity(L.layer.out_ch)


def run_layers(inet, image, conv_fn) -> tuple[np.ndarray, list, int]:
    """The host loop: quantize the input, then per layer pad and run ``conv_fn(j, data, requant) ->
    (out[OH][OW][M], extra)`` (the accelerator, or the reference: the layer's output-unit results); layers not
    finished on chip (:func:`on_chip`) are finished here. Returns (logits, per-layer ``extra``, host ops)."""
    import torch

    from jaq.nn.integer import pad_input

    x = torch.as_tensor(image, dtype=torch.float64)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.shape[0] != 1:
        raise JaqError(f"one image at a time (batch 1), got a batch of {x.shape[0]}", "image")
    check_chain(inet)
    tensors = [inet.quantize_input(x)]
    extras = []
    host_ops = 0
    for j, L in enumerate(inet.layers):
        xin = pad_input(tensors[L.src], L.layer)[0]                     # [C][IH][IW] int64
        x_hwc = xin.permute(1, 2, 0).contiguous().numpy().astype(np.int64)
        w = L.weight.numpy().astype(np.int64)
        w = w.reshape(L.layer.out_ch, L.layer.in_ch_per_group, L.layer.kernel, L.layer.kernel)
        data = LayerData(L.layer, x_hwc, w, layer_reference(L.layer, x_hwc, w))
        out_hwm, extra = conv_fn(j, data, unit_constants(L))
        extras.append(extra)
        out = torch.from_numpy(np.asarray(out_hwm, np.int64)).permute(2, 0, 1).unsqueeze(0)   # [1][M][OH][OW]
        if not on_chip(L):
            residual = tensors[L.residual_src] if L.residual_src is not None else None
            out = L.requantize(out, residual)
            host_ops += 1
        elif L.out_bits is None:  # the classifier's unit wrote integer logits
            out = out.to(torch.float64) * L.logit_scale
        tensors.append(out)
    return tensors[-1].flatten(1).numpy(), extras, host_ops


def run_integer_net(inet, accel: Accelerator, tilings: Sequence[Tiling], image, *, stall: bool = False,
                    cache_dir=None, verilog: dict[str, str] | None = None,
                    toplevel: str | None = None) -> NetworkResult:
    """Run ``inet`` (an :class:`IntegerNet`) on the simulated ``accel`` for one real input ``image`` [C][H][W]
    (or [1][C][H][W]); ``tilings[j]`` is layer j's tiling. Compares the logits with ``inet.run(image)``.
    ``verilog``/``toplevel``: an emitted design (a build dir's sources) instead of generating one."""
    import torch

    from sim.harness import LayerCase, build_accelerator, simulate_layers

    if len(tilings) != len(inet.layers):
        raise JaqError(f"{len(tilings)} tilings for {len(inet.layers)} layers", "tilings")
    layers = [L.layer for L in inet.layers]
    build = build_accelerator(accel, layers, verilog=verilog, toplevel=toplevel, cache_dir=cache_dir)

    def on_accelerator(j, data, requant):
        case = LayerCase(data.layer, tilings[j], data, name=data.layer.name or f"layer{j}", requant=requant)
        rep = simulate_layers(accel, [case], build=build, stall=stall, seed=j)
        if not rep.outputs:
            raise JaqError(f"layer {j}: the simulation produced no output ({'; '.join(rep.errors)[:300]})")
        return rep.outputs[0], rep

    logits, reps, host_ops = run_layers(inet, image, on_accelerator)
    x = torch.as_tensor(image, dtype=torch.float64)
    res = NetworkResult(logits, inet.run(x if x.dim() == 4 else x.unsqueeze(0)).numpy(),
                        build_seconds=build.seconds, host_ops=host_ops)
    for rep in reps:
        res.sim_seconds += rep.sim_seconds
        res.simulated_cycles += rep.simulated_cycles
        res.layer_reports += rep.layers
    return res


def load_run(run_dir) -> tuple:
    """(IntegerNet, Accelerator, tilings, one test image) of a retrained run directory.

    Reads ``RUN/retrained.pt`` (written by ``jaq retrain``), ``RUN/accel.json`` (accelerator + per-layer tilings)
    and the run's data set (first test image)."""
    from jaq.accel_json import load_spec
    from jaq.nn.integer import export_integer
    from jaq.nn.space import SpaceConfig
    from jaq.nn.subnet import SubnetChoice, build_subnet

    run = Path(run_dir)
    ckpt = run / "retrained.pt"
    if not ckpt.is_file():
        raise JaqError(f"{ckpt} not found: run `jaq retrain {run}` first")
    spec = load_spec(run / "accel.json")
    if spec.accelerator is None:
        raise JaqError(f"{run / 'accel.json'} has no accelerator section", "accelerator")
    from jaq.search.rundir import safe_torch_load
    d = safe_torch_load(ckpt)  # weights_only: never runs code from the run directory
    if not isinstance(d, dict) or not {"space", "choice", "state_dict"} <= set(d):
        raise JaqError(f"{ckpt} is not a `jaq retrain` checkpoint (needs space, choice, state_dict): re-run "
                       f"`jaq retrain {run}`")
    space = SpaceConfig.from_dict(dict(d["space"]))
    choice = SubnetChoice.from_dict(d["choice"], space)
    net = build_subnet(space, choice)
    try:
        net.load_state_dict(d["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as e:
        raise JaqError(f"{ckpt} does not fit its own subnet ({str(e).splitlines()[0]}): re-run `jaq retrain {run}`"
                       ) from None
    inet = export_integer(net)
    tilings = spec.tilings
    if any(t is None for t in tilings):
        raise JaqError(f"{run / 'accel.json'}: every layer needs a pinned tiling", "layers[].tiling")
    image = _first_test_image(run)
    return inet, spec.accelerator, list(tilings), image


def _first_test_image(run: Path):
    from jaq.data import load_data
    from jaq.search.config import validate_config
    from jaq.search.rundir import read_config

    cfg = validate_config(read_config(run), str(run / "config.yaml"))
    data = load_data(cfg["data"], seed=cfg["seed"])
    for x, _ in data.test.batches(1, shuffle=False):
        return x[0]
    raise JaqError(f"the data set of {run} has no test images")


def run_network(source, *, image=None, stall: bool = False, cache_dir=None) -> NetworkResult:
    """Whole network end to end on the simulated accelerator: ``source`` is a retrained run directory (or its
    ``accel.json``). ``image``: a real input [C][H][W] (default: the run's first test image)."""
    src = Path(source)
    run = src.parent if src.is_file() else src
    inet, accel, tilings, img = load_run(run)
    return run_integer_net(inet, accel, tilings, img if image is None else image, stall=stall, cache_dir=cache_dir)


__all__ = ["NetworkResult", "run_layers", "run_integer_net", "run_network", "load_run"]
