"""Whole network on the simulated accelerator as program streams over one flat memory.

Every tensor of an integer network (:class:`jaq.nn.integer.IntegerNet`) is placed once in the flat off-chip
memory (:func:`plan_network`, :mod:`jaq.hw.placement`): each stored zero-padded for its consumers, each layer
reading its input through a view and writing the interior of its consumer's tensor, so nothing is copied or
padded between layers. The layers' programs run back to back as one instruction stream in one simulator process
(one build for the whole network); the counters are read at every SET_LAYER, so each layer is checked on its
own. A layer the output unit cannot finish yet (a residual add, docs/execution-model.md section 7.2) writes
32-bit accumulators; the stream is cut after it and the host applies the shared arithmetic
(:meth:`IntLayer.requantize`, :mod:`jaq.hw.requant`) into the next tensor: one *host operation*, counted in the
result. The final logits must equal the PyTorch integer model's (:meth:`IntegerNet.run`) exactly.
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
    bits = [(inet.input_bits, inet.input_signed)]  # (bits, signed) per tensor
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
        if on_chip(L) and L.residual_src is not None and L.residual_src < len(bits) and \
                (lay.res_bits, lay.res_signed) != bits[L.residual_src]:
            raise JaqError(f"{where}: adds a {lay.res_bits}-bit residual but tensor {L.residual_src} holds "
                           f"{bits[L.residual_src][0]}-bit values", "res_bits")
        if on_chip(L) and L.pool != lay.pool:
            raise JaqError(f"{where}: the integer layer {'pools' if L.pool else 'does not pool'} its outputs but "
                           f"the accelerator layer says pool={lay.pool}", "pool")
        out_size = 1 if L.pool else lay.out_h
        if L.residual_src is not None and shapes[L.residual_src] != (lay.out_ch, lay.out_h):
            raise JaqError(f"{where}: residual tensor {L.residual_src} has shape {shapes[L.residual_src]}, the "
                           f"output ({lay.out_ch}, {lay.out_h})", "residual_src")
        if on_chip(L) and L.out_bits is not None and (lay.out_bits, lay.out_signed) != (L.out_bits, L.out_signed):
            raise JaqError(f"{where}: writes {lay.out_bits}-bit outputs but its consumer reads {L.out_bits}-bit "
                           f"ones", "out_bits")
        shapes.append((lay.out_ch, out_size))
        bits.append((L.out_bits, L.out_signed) if L.out_bits is not None else (32, True))


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


@dataclass
class NetworkPlan:
    """Where every tensor of an integer network lives in the flat off-chip memory (jaq.hw.placement).

    ``tensors[t]``: tensor t (0: the network input, j + 1: layer j's result) stored padded by ``pads[t]`` (the
    largest padding of its consumers; the border stays zero); ``acc[j]``: the 32-bit accumulator region of a
    layer the host finishes (None for a layer finished on chip); ``placements[j]`` / ``extra[j]`` (wgt, psum,
    scale regions): what layer j's program addresses."""

    tensors: list
    pads: list[int]
    sizes: list          #: (rows, cols) of each tensor's interior (its real extent)
    acc: list
    placements: list
    extra: list
    regions: list

    @property
    def size_bytes(self) -> int:
        from jaq.hw.placement import ALIGN_BITS
        top = max(r.base + r.size_bits for r in self.regions)
        return -(-top // ALIGN_BITS) * ALIGN_BITS // 8


def plan_network(inet, accel: Accelerator, tilings: Sequence[Tiling], in_size: tuple[int, int]) -> NetworkPlan:
    """Allocate every tensor of ``inet`` once: each stored with the largest padding its consumers read, each
    layer reading its input's view at its own padding and writing the interior of its consumer's tensor."""
    from jaq.hw.placement import Allocator, Placement, arranged_weight_count, scale_words

    W = accel.dram_bits_per_cycle
    alloc = Allocator()
    n = len(inet.layers)
    shapes = [(inet.layers[0].layer.in_ch, in_size[0], in_size[1], inet.input_bits, inet.input_signed)]
    for L in inet.layers:
        lay = L.layer
        oh, ow = (1, 1) if L.pool else (lay.out_h, lay.out_w)
        bits, signed = (L.out_bits, L.out_signed) if L.out_bits is not None else (32, True)
        shapes.append((lay.out_ch, oh, ow, bits, signed))
    pads = [0] * (n + 1)
    rows = [s[1] for s in shapes]
    cols = [s[2] for s in shapes]
    for L in inet.layers:
        pads[L.src] = max(pads[L.src], L.layer.kernel // 2)
    for t in range(n + 1):
        rows[t], cols[t] = rows[t] + 2 * pads[t], cols[t] + 2 * pads[t]
    for L in inet.layers:  # a consumer may read past the padded extent (never for "same" convolutions)
        off = pads[L.src] - L.layer.kernel // 2
        rows[L.src] = max(rows[L.src], off + L.layer.in_h)
        cols[L.src] = max(cols[L.src], off + L.layer.in_w)
    tensors = [alloc.alloc(f"t{t}", rows[t], cols[t], shapes[t][0], shapes[t][3], shapes[t][4])
               for t in range(n + 1)]
    acc, placements, extra = [], [], []
    for j, (L, til) in enumerate(zip(inet.layers, tilings)):
        lay = L.layer
        a = None if on_chip(L) else alloc.alloc(f"acc{j}", lay.out_h, lay.out_w, lay.out_ch, 32)
        wgt = alloc.alloc(f"wgt{j}", 1, 1, arranged_weight_count(lay), lay.wgt_bits)
        psum = alloc.alloc(f"psum{j}", lay.out_h, lay.out_w, lay.out_ch, 32)
        scale = alloc.alloc(f"scale{j}", 1, 1, scale_words(lay, til, W), 32)
        out = a.view() if a is not None else tensors[j + 1].view(pads[j + 1])
        res = None
        if lay.res_bits:
            res = tensors[L.residual_src].view(pads[L.residual_src])
        pl = Placement(act=tensors[L.src].view(pads[L.src] - lay.kernel // 2), wgt=wgt.base, psum=psum.view(),
                       scale=scale.base, out=out, res=res)
        pl.check(lay, f"layers[{j}] ({lay.name or lay.kind}): ")
        acc.append(a)
        placements.append(pl)
        extra.append({"wgt": wgt, "psum": psum, "scale": scale})
    return NetworkPlan(tensors, pads, [(s[1], s[2]) for s in shapes], acc, placements, extra, list(alloc.regions))


def _reference(inet, image) -> tuple[list, list]:
    """Per tensor its integers [H][W][C] (t0 the quantized input), per layer the output unit's results
    [OH][OW][M] (what the accelerator writes), from the PyTorch integer model's trace."""
    import torch

    x = torch.as_tensor(image, dtype=torch.float64)
    x = x.unsqueeze(0) if x.dim() == 3 else x
    _, trace = inet.run(x, trace=True)
    tensors = [inet.quantize_input(x)[0].permute(1, 2, 0).numpy().astype(np.int64)]
    unit = []
    for L, rec in zip(inet.layers, trace):
        acc = rec["acc"][0].permute(1, 2, 0).numpy().astype(np.int64)
        pooled = L.layer.pool and on_chip(L)
        res = tensors[L.residual_src] if L.layer.res_bits else None
        unit.append(np.asarray(unit_constants(L).apply(acc, res, channel_axis=-1,
                                                       pool_axes=(0, 1) if pooled else ()), np.int64))
        out = rec["output"][0]
        if L.out_bits is None:  # the logits (float): the unit's integers stand for them
            tensors.append(unit[-1])
        else:
            tensors.append(out.permute(1, 2, 0).numpy().astype(np.int64))
    return tensors, unit


def _padded(region, pad: int, interior, rng) -> np.ndarray:
    """The region's contents: zero border, ``interior`` at (pad, pad): an array [H][W][C], or an (H, W) size to
    fill with random values of the region's width."""
    from jaq.hw.packing import value_range

    full = np.zeros((region.rows, region.cols, region.channels), np.int64)
    if isinstance(interior, tuple):
        lo, hi = value_range(region.bits, region.signed)
        interior = rng.integers(lo, hi + 1, size=interior + (region.channels,))
    h, w = interior.shape[0], interior.shape[1]
    full[pad:pad + h, pad:pad + w] = interior
    return full


def run_integer_net(inet, accel: Accelerator, tilings: Sequence[Tiling], image, *, stall: bool = False,
                    cache_dir=None, verilog: dict[str, str] | None = None,
                    toplevel: str | None = None, workdir=None) -> NetworkResult:
    """Run ``inet`` (an :class:`IntegerNet`) on the simulated ``accel`` for one real input ``image`` [C][H][W]
    (or [1][C][H][W]); ``tilings[j]`` is layer j's tiling. Every tensor is placed once in one flat memory
    (:func:`plan_network`); the layers run as one program stream in one simulator process, up to a layer the
    host must finish (a *host operation*: the stream is cut there and the host writes that layer's result into
    the memory before the next stream). Each layer's outputs (read from the final memory) must equal the
    integer model's, its counters (read at every SET_LAYER) the walk's and the model's, and the logits
    ``inet.run(image)``. ``verilog``/``toplevel``: an emitted design (a build dir's sources) instead of
    generating one."""
    import tempfile
    import time

    import torch

    from jaq.hw.model import estimate_one
    from jaq.hw.schedule import arrange_scales, arrange_weights, compile_layer, walk
    from rtl_gen.isa import OPCODES, encode_program
    from rtl_gen.protocol import COUNTERS
    from sim.harness import build_accelerator, compare_layer, keep_log, monitor_ok
    from sim.memory_image import FlatImage, data_mask
    from sim.verilator import ensure_importable, run_cocotb
    from testbench.env import Job, TbResult, result_path

    if len(tilings) != len(inet.layers):
        raise JaqError(f"{len(tilings)} tilings for {len(inet.layers)} layers", "tilings")
    x = torch.as_tensor(image, dtype=torch.float64)
    x = x.unsqueeze(0) if x.dim() == 3 else x
    if x.shape[0] != 1:
        raise JaqError(f"one image at a time (batch 1), got a batch of {x.shape[0]}", "image")
    check_chain(inet)
    ensure_importable()
    layers = [L.layer for L in inet.layers]
    build = build_accelerator(accel, layers, verilog=verilog, toplevel=toplevel, cache_dir=cache_dir)
    plan = plan_network(inet, accel, tilings, (x.shape[2], x.shape[3]))
    ref_tensors, ref_unit = _reference(inet, x)
    rng = np.random.default_rng(0)
    img = FlatImage(plan.regions)
    img.put(plan.tensors[0], _padded(plan.tensors[0], plan.pads[0], ref_tensors[0], rng))
    for t in range(1, len(plan.tensors)):  # zero borders, garbage interiors: every output must be written
        img.put(plan.tensors[t], _padded(plan.tensors[t], plan.pads[t], plan.sizes[t], rng))
    programs, walks, models = [], [], []
    for j, (L, til) in enumerate(zip(inet.layers, tilings)):
        lay, ex, rq = L.layer, plan.extra[j], unit_constants(L)
        w = L.weight.numpy().astype(np.int64).reshape(lay.out_ch, lay.in_ch_per_group, lay.kernel, lay.kernel)
        img.put(ex["wgt"], arrange_weights(w, lay, til, accel.dataflow)[0])
        img.put(ex["psum"], rng.integers(-2**31, 2**31, size=ex["psum"].elems))
        img.put(ex["scale"], arrange_scales(rq.mult, rq.bias, lay, til, accel.dram_bits_per_cycle))
        if plan.acc[j] is not None:
            img.put(plan.acc[j], rng.integers(-2**31, 2**31, size=plan.acc[j].elems))
        prog = compile_layer(lay, accel, til, plan.placements[j])
        programs.append(encode_program(prog, accel, rq))
        walks.append(walk(prog))
        models.append(estimate_one(lay, accel, til))
    segments, start = [], 0
    for j, L in enumerate(inet.layers):
        if not on_chip(L) or j == len(inet.layers) - 1:
            segments.append(list(range(start, j + 1)))
            start = j + 1
    tmp = tempfile.TemporaryDirectory(prefix="jaq_net_") if workdir is None else None
    wd = Path(tmp.name if tmp else workdir)
    memory = img.bytes
    res_net = NetworkResult(np.zeros(0), inet.run(x).numpy(), build_seconds=build.seconds)
    t_sim = time.perf_counter()
    try:
        for k, seg in enumerate(segments):
            expected, mask = memory.copy(), np.zeros_like(memory)
            outs = {}
            for j in seg:
                region = plan.acc[j] if plan.acc[j] is not None else plan.tensors[j + 1]
                pad = 0 if plan.acc[j] is not None else plan.pads[j + 1]
                outs[j] = (region, pad)
                FlatImage(data=expected).put(region, _padded(region, pad, ref_unit[j], rng))
                a = region.base // 8
                km = data_mask(region)
                mask[a:a + len(km)] |= km
            words = [w for j in seg for w in programs[j]]
            budget = sum(walks[j]["cycles"] for j in seg) * (8 if stall else 2) + 2000
            job = Job(memory=memory, width_bits=accel.dram_bits_per_cycle, latency=accel.dram_latency_cycles,
                      program=words, expected=expected, mask=mask, stall=stall, seed=k + 1, max_cycles=budget,
                      counters=COUNTERS, name=f"segment{k}", mark_opcode=OPCODES["SET_LAYER"])
            path = job.save(wd / f"segment{k:03d}.npz")
            (wd / "jobs.txt").write_text(f"{path}\n")
            r = run_cocotb(build, "testbench.accel_tb", wd, extra_env={"JAQ_TB_JOBS": str(wd / "jobs.txt")})
            if not result_path(path).is_file():
                log = keep_log(r.log_file) if tmp else r.log_file
                raise JaqError(f"segment {k} (layers {seg[0]}..{seg[-1]}): the simulator produced no result; "
                               f"log: {log}")
            res = TbResult.load(result_path(path))
            res_net.simulated_cycles += res.tb_cycles
            marks = res.marks + [res.counters]
            mon_ok = monitor_ok(res.mem, [walks[j] for j in seg])
            for i, j in enumerate(seg):
                region, pad = outs[j]
                got = FlatImage.get(res.memory, region).reshape(region.rows, region.cols, region.channels)
                oh, ow = ref_unit[j].shape[:2]
                got = got[pad:pad + oh, pad:pad + ow].reshape(-1)
                delta = {c: marks[i + 1][c] - marks[i][c] for c in COUNTERS}
                rep = compare_layer(layers[j], tilings[j], layers[j].name or f"layer{j}", got,
                                    ref_unit[j].reshape(-1), delta, res.finished, mon_ok, res.mem, walks[j],
                                    models[j], stall)
                res_net.layer_reports.append(rep)
            memory = res.memory.copy()
            j = seg[-1]
            if not on_chip(inet.layers[j]):  # the host finishes layer j into tensor j + 1
                L = inet.layers[j]
                accs = FlatImage.get(memory, plan.acc[j]).reshape(L.layer.out_h, L.layer.out_w, L.layer.out_ch)
                acc_t = torch.from_numpy(accs).permute(2, 0, 1).unsqueeze(0)
                resid = None
                if L.residual_src is not None:
                    tr = plan.tensors[L.residual_src]
                    full = FlatImage.get(memory, tr).reshape(tr.rows, tr.cols, tr.channels)
                    p = plan.pads[L.residual_src]
                    resid = torch.from_numpy(full[p:p + L.layer.out_h, p:p + L.layer.out_w].copy()
                                             ).permute(2, 0, 1).unsqueeze(0)
                out = L.requantize(acc_t, resid)[0].permute(1, 2, 0).numpy().astype(np.int64)
                host = FlatImage(data=memory)
                t = plan.tensors[j + 1]
                full = FlatImage.get(memory, t).reshape(t.rows, t.cols, t.channels)
                p = plan.pads[j + 1]
                full[p:p + out.shape[0], p:p + out.shape[1]] = out
                host.put(t, full)
                res_net.host_ops += 1
    finally:
        res_net.sim_seconds = time.perf_counter() - t_sim
        if tmp is not None:
            tmp.cleanup()
    last = inet.layers[-1]
    t = plan.tensors[-1]
    logits = FlatImage.get(memory, t).reshape(t.rows, t.cols, t.channels)[plan.pads[-1]:, plan.pads[-1]:]
    logits = logits[:1, :1].reshape(1, -1).astype(np.float64)
    res_net.logits_rtl = logits * last.logit_scale if last.out_bits is None else logits
    return res_net


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
