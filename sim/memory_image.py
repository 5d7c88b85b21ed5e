"""Off-chip memory images of one layer (docs/execution-model.md section 2) and result extraction.

Memory is element-addressed per tensor; the testbench's memory model keeps one flat array per tensor:

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
from jaq.hw.packing import value_range
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


def wgt_image(layer: Layer, tiling: Tiling, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The weight region arranged per tile, and the tile bases (the compiler's own helper; one definition)."""
    from jaq.hw.schedule import arrange_weights

    flat, bases = arrange_weights(np.asarray(w, dtype=np.int64), layer, tiling)
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
    """Initial out tensor (``OH*OW*out_ch`` elements of ``out_bits``): random values of that width, or zeros."""
    n = layer.out_h * layer.out_w * layer.out_ch
    if fill == "zero":
        return np.zeros(n, np.int64)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    lo, hi = value_range(layer.out_bits, layer.out_signed)
    return rng.integers(lo, hi + 1, size=n, dtype=np.int64)


def scale_image(requant, layer: Layer, tiling: Tiling, bus_bits: int) -> np.ndarray:
    """The output unit's constants as the compiler arranges them (:func:`jaq.hw.schedule.arrange_scales`)."""
    from jaq.hw.schedule import arrange_scales

    return arrange_scales(requant.mult, requant.bias, layer, tiling, bus_bits)


def build_image(data: LayerData, tiling: Tiling, fill: str = "garbage", seed: int = 0) -> MemoryImage:
    """All regions of one layer for ``tiling`` (the weight arrangement depends on the tile sizes)."""
    layer = data.layer
    wgt, bases = wgt_image(layer, tiling, data.w)
    return MemoryImage(act=act_image(layer, data.x), wgt=wgt, out=out_image(layer, fill, seed),
                       expected_out=np.asarray(data.y, np.int64).reshape(-1), wgt_tile_bases=bases)


def extract_output(layer: Layer, out_region: np.ndarray) -> np.ndarray:
    """The ``[OH][OW][out_ch]`` output tensor from a final output region."""
    out_region = np.asarray(out_region, np.int64)
    n = layer.out_h * layer.out_w * layer.out_ch
    if out_region.size != n:
        raise JaqError(f"output region has {out_region.size} elements, expected {n}", "out")
    return out_region.reshape(layer.out_h, layer.out_w, layer.out_ch)


def mismatch_summary(layer: Layer, got: np.ndarray, expected: np.ndarray, limit: int = 5) -> list[str]:
    """Human-readable first ``limit`` differences ``(oh, ow, oc): got != expected``."""
    g = extract_output(layer, got)
    e = extract_output(layer, expected)
    bad = np.argwhere(g != e)
    return [f"({int(a)}, {int(b)}, {int(c)}): got {int(g[a, b, c])} expected {int(e[a, b, c])}"
            for a, b, c in bad[:limit]]


__all__ = ["MemoryImage", "act_image", "wgt_image", "out_image", "final_image", "scale_image", "build_image",
           "extract_output", "mismatch_summary"]
