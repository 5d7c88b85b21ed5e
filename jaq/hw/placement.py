"""Where a layer's tensors live in the flat, bit-addressed off-chip memory (docs/execution-model.md section 2).

Off-chip memory is one bit-addressed space. A tensor ``[rows][cols][channels]`` of ``bits``-bit elements is
stored channel-innermost from a base bit address aligned to :data:`ALIGN_BITS`. A layer addresses each tensor
through a :class:`TensorView`: the bit address of its element (0, 0, 0) and the row pitch in pixels, so that
a layer reads the padded input a producer wrote and writes the *interior* of its consumer's padded input
(the border stays zero). The compiler (:mod:`jaq.hw.schedule`) works in element offsets from a view's origin;
the encoder (:mod:`rtl_gen.isa`) turns them into bit addresses with :meth:`TensorView.bits_at`.
"""

from __future__ import annotations

from dataclasses import dataclass

from jaq.errors import JaqError
from jaq.hw.records import Layer, Tiling

#: Alignment of every tensor's base (bits): 64 bytes, one DRAM burst.
ALIGN_BITS = 512
#: Width of an off-chip bit address (instruction ``base`` fields, ``rd_req_addr``, ``wr_addr``): 128 GiB.
ADDR_BITS = 40


@dataclass(frozen=True)
class TensorView:
    """A tensor as one layer addresses it: element ``(y, x, c)`` at bit
    ``base + ((y*pitch + x)*channels + c) * bits``."""

    base: int      #: bit address of element (0, 0, 0)
    pitch: int     #: pixels per stored row
    channels: int
    bits: int

    def offset(self, y: int, x: int, c: int) -> int:
        """Element offset of (y, x, c) from the view's origin."""
        return (y * self.pitch + x) * self.channels + c

    def bits_at(self, offset: int) -> int:
        """Bit address of the element ``offset`` elements past the origin."""
        return self.base + offset * self.bits

    @property
    def row_elems(self) -> int:
        """Elements between two rows."""
        return self.pitch * self.channels


@dataclass(frozen=True)
class TensorRegion:
    """An allocated tensor ``[rows][cols][channels]`` of ``bits``-bit elements at bit address ``base``."""

    name: str
    base: int
    rows: int
    cols: int
    channels: int
    bits: int
    signed: bool = True

    @property
    def elems(self) -> int:
        return self.rows * self.cols * self.channels

    @property
    def size_bits(self) -> int:
        return self.elems * self.bits

    def view(self, pad: int = 0) -> TensorView:
        """The view whose origin is pixel (pad, pad): the interior of a tensor padded by ``pad`` on each side."""
        return TensorView(self.base + (pad * self.cols + pad) * self.channels * self.bits, self.cols,
                          self.channels, self.bits)


@dataclass(frozen=True)
class Placement:
    """The tensors one layer program addresses (bit addresses; docs/execution-model.md section 2)."""

    act: TensorView      #: the padded input; origin = its top-left padded pixel
    wgt: int             #: the weights arranged per tile (jaq.hw.schedule.arrange_weights)
    psum: TensorView     #: 32-bit partial sums ``[OH][OW][out_ch]``
    scale: int           #: the output unit's constants (jaq.hw.schedule.arrange_scales), 32-bit words
    out: TensorView      #: the final outputs; origin = output pixel (0, 0) in the consumer's tensor
    res: TensorView | None = None  #: the residual operand (the block input); origin = output pixel (0, 0)

    def check(self, layer: Layer, where: str = "") -> None:
        """One-line error unless the views fit ``layer`` (channels, bits, pitch at least the row)."""
        out_cols = 1 if layer.pool else layer.out_w
        for name, v, ch, bits, cols in (("act", self.act, layer.in_ch, layer.act_bits, layer.in_w),
                                        ("psum", self.psum, layer.out_ch, 32, layer.out_w),
                                        ("out", self.out, layer.out_ch, layer.out_bits, out_cols)):
            if v.channels != ch or v.bits != bits or v.pitch < cols:
                raise JaqError(f"{where}{name} tensor view ({v.channels} channels, {v.bits} bits, pitch {v.pitch})"
                               f" does not fit the layer ({ch} channels, {bits} bits, rows of {cols})",
                               f"placement.{name}")
        if (self.res is None) != (not layer.res_bits):
            raise JaqError(f"{where}the layer {'adds' if layer.res_bits else 'has no'} residual but the placement "
                           f"{'has no' if self.res is None else 'has a'} residual view", "placement.res")
        if self.res is not None:
            v = self.res
            if v.channels != layer.out_ch or v.bits != layer.res_bits or v.pitch < layer.out_w:
                raise JaqError(f"{where}res tensor view ({v.channels} channels, {v.bits} bits, pitch {v.pitch}) does "
                               f"not fit the layer ({layer.out_ch} channels, {layer.res_bits} bits, rows of "
                               f"{layer.out_w})", "placement.res")


class Allocator:
    """Bump allocator of the off-chip memory: regions aligned to :data:`ALIGN_BITS`, never overlapping."""

    def __init__(self, start: int = 0):
        self.top = start
        self.regions: list[TensorRegion] = []

    def alloc(self, name: str, rows: int, cols: int, channels: int, bits: int, signed: bool = True) -> TensorRegion:
        base = -(-self.top // ALIGN_BITS) * ALIGN_BITS
        r = TensorRegion(name, base, rows, cols, channels, bits, signed)
        self.top = base + r.size_bits
        if self.top > 1 << ADDR_BITS:
            raise JaqError(f"the tensors need {self.top} bits of off-chip memory, beyond the {ADDR_BITS}-bit "
                           f"address space", "placement")
        self.regions.append(r)
        return r

    @property
    def size_bytes(self) -> int:
        return -(-self.top // ALIGN_BITS) * ALIGN_BITS // 8


def scale_words(layer: Layer, tiling: Tiling, bus_bits: int) -> int:
    """32-bit words of the layer's arranged scale tensor (docs section 7.1)."""
    from jaq.hw import timing as T

    e_o = T.elems_per_beat(bus_bits, T.OUT_BITS)
    n = tiling.counts(layer)
    full, edge = divmod(layer.tile_dims["OC"], tiling.t_oc)
    per_group = full * T.scale_tile_beats(tiling.t_oc, e_o) + (T.scale_tile_beats(edge, e_o) if edge else 0)
    assert full + (1 if edge else 0) == n["OC"]
    return layer.tile_groups * per_group * e_o


def arranged_weight_count(layer: Layer) -> int:
    """Elements of a layer's weight region: its weights, or for a depthwise layer ``n_g * pf * out_ch`` window-
    vector elements when that is more (docs section 8; the region fits the arrangement of every dataflow)."""
    from jaq.hw import timing as T

    if not layer.depthwise:
        return layer.weight_count
    pf = T.fusion_factor(layer.act_bits, layer.wgt_bits)
    return max(layer.weight_count, T.dw_groups(layer.kernel, pf) * pf * layer.out_ch)


def layer_regions(alloc: Allocator, layer: Layer, tiling: Tiling, bus_bits: int, *, act: TensorRegion | None = None,
                  out: TensorRegion | None = None, out_pad: int = 0, prefix: str = "") -> tuple[Placement, dict]:
    """Allocate what one layer needs beside its input ``act`` and output ``out`` regions (allocated here when
    None: the input at the padded extents, the output unpadded, one pixel for a pooled layer) and return
    (placement, {name: region})."""
    if act is None:
        act = alloc.alloc(prefix + "act", layer.in_h, layer.in_w, layer.in_ch, layer.act_bits, layer.act_signed)
    wgt = alloc.alloc(prefix + "wgt", 1, 1, arranged_weight_count(layer), layer.wgt_bits)
    psum = alloc.alloc(prefix + "psum", layer.out_h, layer.out_w, layer.out_ch, 32)
    scale = alloc.alloc(prefix + "scale", 1, 1, scale_words(layer, tiling, bus_bits), 32)
    if out is None:
        oh, ow = (1, 1) if layer.pool else (layer.out_h, layer.out_w)
        out = alloc.alloc(prefix + "out", oh, ow, layer.out_ch, layer.out_bits, layer.out_signed)
    regions = {"act": act, "wgt": wgt, "psum": psum, "scale": scale, "out": out}
    if layer.res_bits:
        regions["res"] = alloc.alloc(prefix + "res", layer.out_h, layer.out_w, layer.out_ch, layer.res_bits,
                                     layer.res_signed)
    p = Placement(act=act.view(), wgt=wgt.base, psum=psum.view(), scale=scale.base, out=out.view(out_pad),
                  res=regions["res"].view() if layer.res_bits else None)
    p.check(layer)
    return p, regions


def single_layer(layer: Layer, tiling: Tiling, bus_bits: int) -> tuple[Placement, dict]:
    """The placement of a layer run on its own: act, wgt, psum, scale, out regions one after another."""
    return layer_regions(Allocator(), layer, tiling, bus_bits)


__all__ = ["ALIGN_BITS", "ADDR_BITS", "TensorView", "TensorRegion", "Placement", "Allocator", "scale_words",
           "arranged_weight_count",
           "layer_regions", "single_layer"]
