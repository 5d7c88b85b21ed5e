"""Off-chip memory images (docs/execution-model.md section 2) and result extraction.

The off-chip memory is one flat bit-addressed space (:class:`FlatImage`; tensors placed by
:mod:`jaq.hw.placement`). Each tensor's elements, as flat int64 arrays (what the tile-level model
:mod:`sim.program_model` reads), are:

* ``act``: the zero-padded input ``[IH][IW][in_ch]`` flattened (element ``(y, x, ch)`` at ``(y*IW + x)*in_ch + ch``);
* ``wgt``: the weights arranged per tile by the compiler (:func:`jaq.hw.schedule.arrange_weights`: tiles in
  (group, oc-tile, ic-tile) order, each ``[m'][K][K][c']``), so each ``LOAD_WGT`` reads one contiguous block;
* ``out``: the 32-bit output / partial-sum region ``[OH][OW][out_ch]``. It starts filled with random garbage
  (``fill="garbage"``) so that an accelerator relying on its initial contents (instead of overwriting on the
  first contribution, or loading back what it stored) cannot pass by accident.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jaq.errors import JaqError
from jaq.hw.packing import pack_bytes, unpack_bytes, value_range
from jaq.hw.placement import ALIGN_BITS, TensorRegion, single_layer
from jaq.hw.records import Layer, Tiling
from sim.reference import LayerData


@dataclass
class MemoryImage:
    """Flat int64 element arrays of the three tensor regions plus the golden output region (same layout)."""

    act: np.ndarray
    wgt: np.ndarray
    out: np.ndarray
    expected_out: np.ndarray
    wgt_tile_bases: np.ndarray  #: (G, n_oc, n_ic) first element of each weight tile in ``wgt``


def act_image(layer: Layer, x: np.ndarray) -> np.ndarray:
    """The activation region: ``x[IH][IW][in_ch]`` flattened channel-innermost."""
    x = np.asarray(x, dtype=np.int64)
    if x.shape != (layer.in_h, layer.in_w, layer.in_ch):
        raise JaqError(f"activations {x.shape} != {(layer.in_h, layer.in_w, layer.in_ch)}", "x")
    return x.reshape(-1)


def wgt_image(layer: Layer, tiling: Tiling, w: np.ndarray, dataflow: str) -> tuple[np.ndarray, np.ndarray]:
    """The weight region arranged per tile for ``dataflow``, and the tile bases (the compiler's own helper)."""
    from jaq.hw.schedule import arrange_weights

    flat, bases = arrange_weights(np.asarray(w, dtype=np.int64), layer, tiling, dataflow)
    return flat.astype(np.int64), bases


def out_image(layer: Layer, fill: str = "garbage", rng: np.random.Generator | int | None = 0) -> np.ndarray:
    """Initial output region (``OH*OW*out_ch`` 32-bit elements): ``"garbage"`` (random) or ``"zero"``."""
    n = layer.out_h * layer.out_w * layer.out_ch
    if fill == "zero":
        return np.zeros(n, np.int64)
    if fill != "garbage":
        raise JaqError(f"unknown fill {fill!r}; use 'garbage' or 'zero'", "fill")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return rng.integers(-2**31, 2**31, size=n, dtype=np.int64)


def final_image(layer: Layer, fill: str = "garbage", rng: np.random.Generator | int | None = 0) -> np.ndarray:
    """Initial out tensor (``OH*OW*out_ch`` elements of ``out_bits``, ``out_ch`` for a pooled layer): random values
    of that width, or zeros."""
    n = (1 if layer.pool else layer.out_h * layer.out_w) * layer.out_ch
    if fill == "zero":
        return np.zeros(n, np.int64)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    lo, hi = value_range(layer.out_bits, layer.out_signed)
    return rng.integers(lo, hi + 1, size=n, dtype=np.int64)


def scale_image(requant, layer: Layer, tiling: Tiling, bus_bits: int) -> np.ndarray:
    """The output unit's constants as the compiler arranges them (:func:`jaq.hw.schedule.arrange_scales`)."""
    from jaq.hw.schedule import arrange_scales

    return arrange_scales(requant.mult, requant.bias, layer, tiling, bus_bits)


def build_image(data: LayerData, tiling: Tiling, dataflow: str, fill: str = "garbage", seed: int = 0) -> MemoryImage:
    """All regions of one layer for ``tiling`` on a ``dataflow`` array (the weight arrangement depends on both)."""
    layer = data.layer
    wgt, bases = wgt_image(layer, tiling, data.w, dataflow)
    return MemoryImage(act=act_image(layer, data.x), wgt=wgt, out=out_image(layer, fill, seed),
                       expected_out=np.asarray(data.y, np.int64).reshape(-1), wgt_tile_bases=bases)


class FlatImage:
    """The bytes of the flat off-chip memory holding ``regions`` (zero where nothing is put)."""

    def __init__(self, regions=(), data: np.ndarray | None = None):
        """Zeros sized for ``regions``, or (``data``) an existing memory, edited in place."""
        if data is not None:
            self.bytes = data
        else:
            top = max((r.base + r.size_bits for r in regions), default=0)
            self.bytes = np.zeros(-(-top // ALIGN_BITS) * ALIGN_BITS // 8, np.uint8)

    def put(self, region: TensorRegion, values) -> None:
        """Store ``values`` (``region.elems`` integers, channel-innermost) in ``region``."""
        v = np.asarray(values, np.int64).reshape(-1)
        if v.size != region.elems:
            raise JaqError(f"{v.size} values for the {region.elems} elements of {region.name}", region.name)
        data = np.frombuffer(pack_bytes(v, region.bits), np.uint8)
        a = region.base // 8
        if region.size_bits % 8:  # a partial last byte: keep its other bits
            keep = self.bytes[a + len(data) - 1] & ~np.uint8(data_mask(region)[-1])
            self.bytes[a:a + len(data)] = data
            self.bytes[a + len(data) - 1] |= keep
        else:
            self.bytes[a:a + len(data)] = data

    @staticmethod
    def get(memory: np.ndarray, region: TensorRegion) -> np.ndarray:
        """The ``region.elems`` integers of ``region`` in ``memory`` (bytes), flat."""
        a = region.base // 8
        return unpack_bytes(np.asarray(memory, np.uint8)[a:a + -(-region.size_bits // 8)].tobytes(), region.bits,
                            region.elems, region.signed)

    def expect(self, region: TensorRegion, values, expected: np.ndarray, mask: np.ndarray) -> None:
        """Mark ``region`` as checked in (``expected``, ``mask``), holding ``values``."""
        a = region.base // 8
        data = np.frombuffer(pack_bytes(np.asarray(values, np.int64).reshape(-1), region.bits), np.uint8)
        k = data_mask(region)
        expected[a:a + len(data)] = (expected[a:a + len(data)] & ~k) | (data & k)
        mask[a:a + len(data)] |= k


def data_mask(region: TensorRegion) -> np.ndarray:
    """Byte mask of the bits ``region`` occupies, from its first byte."""
    return np.frombuffer(pack_bytes(np.full(region.elems, (1 << region.bits) - 1, np.int64), region.bits),
                         np.uint8)


@dataclass
class LayerJobImage:
    """One layer's flat memory image, its placement and regions, and the checked bytes (the out region)."""

    memory: np.ndarray
    placement: object
    regions: dict
    expected: np.ndarray
    mask: np.ndarray
    expected_out: np.ndarray  #: [OH][OW][out_ch] the out region must hold


def layer_job_image(data: LayerData, tiling: Tiling, requant, accel, seed: int = 0) -> LayerJobImage:
    """The flat memory of one layer run on its own (:func:`jaq.hw.placement.single_layer`): padded input,
    weights arranged for ``tiling``, partial sums and out tensor full of garbage, the output unit's constants."""
    layer = data.layer
    bus_bits = accel.dram_bits_per_cycle
    placement, regions = single_layer(layer, tiling, bus_bits)
    img = FlatImage(regions.values())
    wgt, _ = wgt_image(layer, tiling, data.w, accel.dataflow)
    rng = np.random.default_rng(seed)
    img.put(regions["act"], act_image(layer, data.x))
    img.put(regions["wgt"], wgt)
    img.put(regions["psum"], out_image(layer, "garbage", rng))
    img.put(regions["scale"], scale_image(requant, layer, tiling, bus_bits))
    img.put(regions["out"], final_image(layer, "garbage", rng))
    if layer.res_bits:
        img.put(regions["res"], data.res)
    expected_out = np.asarray(requant.apply(data.y, data.res, channel_axis=-1,
                                            pool_axes=(0, 1) if layer.pool else ()), np.int64)
    expected, mask = img.bytes.copy(), np.zeros_like(img.bytes)
    img.expect(regions["out"], expected_out, expected, mask)
    return LayerJobImage(img.bytes, placement, regions, expected, mask, expected_out)


def extract_output(layer: Layer, out_region: np.ndarray) -> np.ndarray:
    """The ``[OH][OW][out_ch]`` output tensor (``[1][1][out_ch]`` for a pooled layer) from a final output
    region."""
    out_region = np.asarray(out_region, np.int64)
    oh, ow = (1, 1) if layer.pool and out_region.size == layer.out_ch else (layer.out_h, layer.out_w)
    n = oh * ow * layer.out_ch
    if out_region.size != n:
        raise JaqError(f"output region has {out_region.size} elements, expected {n}", "out")
    return out_region.reshape(oh, ow, layer.out_ch)


def mismatch_summary(layer: Layer, got: np.ndarray, expected: np.ndarray, limit: int = 5) -> list[str]:
    """Human-readable first ``limit`` differences ``(oh, ow, oc): got != expected``."""
    g = extract_output(layer, got)
    e = extract_output(layer, expected)
    bad = np.argwhere(g != e)
    return [f"({int(a)}, {int(b)}, {int(c)}): got {int(g[a, b, c])} expected {int(e[a, b, c])}"
            for a, b, c in bad[:limit]]


__all__ = ["FlatImage", "LayerJobImage", "layer_job_image", "data_mask", "MemoryImage", "act_image", "wgt_image", "out_image", "final_image", "scale_image", "build_image",
           "extract_output", "mismatch_summary"]
