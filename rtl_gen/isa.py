"""Binary encoding of the accelerator's instructions (fixed ``INSTR_BITS``-bit words) + decode + listings.

Every instruction word holds the opcode in bits ``[0, 4)`` and its fields packed LSB first from bit 4 in the
order of :data:`FIELDS` (docs/rtl.md prints the table with bit positions: :func:`field_table_markdown`).
Unused high bits are zero. Field meanings:

``SET_LAYER``: ``k`` kernel side, ``s`` stride, ``a_mode``/``w_mode`` precision codes (0: 2, 1: 4, 2: 8 bits),
``act_signed``, RS constants ``rs_r = min(K, Y)`` kernel rows per pass and ``rs_q = max(1, Y // K)`` output
channels side by side; the output unit's layer constants ``shift``, ``relu``, ``o_mode`` (0/1/2/3: 2/4/8/32
output bits) and ``o_signed`` (docs/execution-model.md section 7); ``dw``: COMPUTEs follow the depthwise mapping
(section 8); ``st_rlog``: log2 of the OBUF lines per output-unit step of the final stores (section 7.4);
``overlap``: the program is double-buffered, so DMA instructions issue while COMPUTE runs (section 9).

``LOAD_ACT`` / ``LOAD_WGT`` / ``LOAD_PSUM`` / ``LOAD_SCALE`` / ``STORE_OUT`` (DMA descriptor in **bits** of the
flat off-chip memory, jaq.hw.placement; ``STORE_OUT`` adds ``final``: through the output unit to the out tensor,
``px_lines`` the OBUF lines of one pixel run (``ceil(m'/E_o)``, 0 for partial stores), and for a pooled layer's
final store ``pool_px`` pixels summed per output, 0 otherwise: docs/execution-model.md sections 7.2 and 7.4):
runs start at bit ``run(o, i) = base + o*ostride + i*istride`` for ``o < n_outer``, ``i < n_inner`` (outer
first), each ``run_len`` elements of ``b`` bits long, cut into beats of at most ``E_b = W/b`` elements; buffer
lines are consecutive from the first line of buffer half ``half`` (one beat = one line; line 0, or line
``floor(lines/2)`` of a double buffer's second half, section 9).

``COMPUTE``: tile extents ``c, m, h, w`` (input channels, output channels, output rows, output columns), ``cv =
ceil(c/pf)`` channel vectors, ``acc`` (accumulate onto the OBUF; clear: the first contribution overwrites), and
buffer geometry in 32-bit words: ``iw = (w-1)*S + K`` input tile columns, ``pa`` words per activation pixel
(``ceil(c/E_a) * W/32``), ``pw`` words per weight run (``ceil(c/E_w) * W/32``; a depthwise layer's runs hold
``m`` channels instead of ``c``, section 8), ``po`` words per output pixel
(``ceil(m/E_o) * W/32``), ``wm`` = ``K*K*pw`` words per output channel of weights, ``arow = iw*pa`` words per
input row; ``act_half``, ``wgt_half``, ``out_half``: the buffer halves read and accumulated into (section 9).

``SYNC``: no fields; waits until the engine and the DMA are idle (section 9).

``SET_RES``: the residual view (bits) of the next final store, ``base, ostride, istride``: its runs have the
store's shape (docs/execution-model.md section 7.3).

``END``: no fields; the accelerator raises ``done``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from jaq.errors import JaqError
from jaq.hw import timing as T
from jaq.hw.packing import MODE_OF_BITS
from jaq.hw.placement import ADDR_BITS
from jaq.hw.records import OUT_UNIT_LINES
from rtl_gen.protocol import OPCODE_BITS

INSTR_BITS = 192

OPCODES: dict[str, int] = {"SET_LAYER": 1, "LOAD_ACT": 2, "LOAD_WGT": 3, "LOAD_PSUM": 4, "STORE_OUT": 5,
                           "COMPUTE": 6, "END": 7, "LOAD_SCALE": 8, "SET_RES": 9, "SYNC": 10}
OPNAMES = {v: k for k, v in OPCODES.items()}

_DMA = (("base", ADDR_BITS), ("n_outer", 16), ("ostride", 32), ("n_inner", 16), ("istride", 32), ("run_len", 16),
        ("half", 1))

#: Fields per opcode: (name, width in bits), packed from bit OPCODE_BITS upward in this order.
FIELDS: dict[str, tuple[tuple[str, int], ...]] = {
    "SET_LAYER": (("k", 5), ("s", 5), ("a_mode", 2), ("w_mode", 2), ("act_signed", 1), ("rs_r", 7),
                  ("rs_q", 7), ("shift", 6), ("relu", 1), ("o_mode", 2), ("o_signed", 1), ("res", 1), ("r_mode", 2),
                  ("r_signed", 1), ("res_mult", 32), ("dw", 1), ("st_rlog", 3), ("dw_ng", 10), ("dw_q", 7),
                  ("overlap", 1)),
    "SET_RES": (("base", ADDR_BITS), ("ostride", 32), ("istride", 32)),
    "LOAD_ACT": _DMA,
    "LOAD_WGT": _DMA,
    "LOAD_PSUM": _DMA,
    "LOAD_SCALE": _DMA,
    "STORE_OUT": _DMA + (("final", 1), ("pool_px", 12), ("px_lines", 11)),
    "COMPUTE": (("c", 11), ("m", 11), ("h", 11), ("w", 11), ("cv", 11), ("acc", 1), ("iw", 16), ("pa", 16),
                ("pw", 16), ("po", 16), ("wm", 20), ("arow", 20), ("act_half", 1), ("wgt_half", 1),
                ("out_half", 1)),
    "SYNC": (),
    "END": (),
}


def field_offsets(op: str) -> dict[str, tuple[int, int]]:
    """``{field: (lsb, width)}`` of one opcode."""
    pos = OPCODE_BITS
    out = {}
    for name, width in FIELDS[op]:
        out[name] = (pos, width)
        pos += width
    assert pos <= INSTR_BITS, op
    return out


@dataclass(frozen=True)
class Instr:
    """One decoded instruction: opcode name and field values (non-negative integers)."""

    op: str
    fields: Mapping[str, int]

    def __getitem__(self, k: str) -> int:
        return self.fields[k]

    def listing(self) -> str:
        return f"{self.op:<10} " + " ".join(f"{k}={v}" for k, v in self.fields.items())


def encode(op: str, **values: int) -> int:
    """Encode one instruction; every field of the opcode must be given and fit its width."""
    if op not in OPCODES:
        raise JaqError(f"unknown opcode {op!r}", "op")
    word = OPCODES[op]
    offs = field_offsets(op)
    missing = set(offs) - set(values)
    extra = set(values) - set(offs)
    if missing or extra:
        raise JaqError(f"{op}: missing {sorted(missing)} / unknown {sorted(extra)}", "fields")
    for name, (lsb, width) in offs.items():
        v = int(values[name])
        if v < 0 or v >= 1 << width:
            raise JaqError(f"{op}.{name}={v} does not fit {width} bits (layer or tile too large for this ISA)",
                           f"{op}.{name}")
        word |= v << lsb
    return word


def decode(word: int) -> Instr:
    """Decode one instruction word (inverse of :func:`encode`)."""
    code = word & ((1 << OPCODE_BITS) - 1)
    if code not in OPNAMES:
        raise JaqError(f"bad opcode {code} in instruction word {word:#x}", "opcode")
    op = OPNAMES[code]
    return Instr(op, {n: (word >> lsb) & ((1 << w) - 1) for n, (lsb, w) in field_offsets(op).items()})


def to_hex(words: Iterable[int]) -> str:
    """One instruction per line, ``INSTR_BITS/4`` hex digits, MSB first (``$readmemh`` format)."""
    digits = INSTR_BITS // 4
    return "".join(f"{w:0{digits}x}\n" for w in words)


def from_hex(text: str) -> list[int]:
    return [int(line, 16) for line in text.split() if line.strip()]


def listing(words: Sequence[int]) -> str:
    """Readable listing: index, hex word, mnemonic and fields."""
    digits = INSTR_BITS // 4
    return "".join(f"{i:5d}  {w:0{digits}x}  {decode(w).listing()}\n" for i, w in enumerate(words))


def field_table_markdown() -> str:
    """The field table of every opcode as Markdown (bit positions LSB first)."""
    rows = ["| opcode | value | field | bits |", "|---|---|---|---|"]
    for op, code in OPCODES.items():
        offs = field_offsets(op)
        if not offs:
            rows.append(f"| {op} | {code} | - | - |")
        for n, (lsb, w) in offs.items():
            rows.append(f"| {op} | {code} | {n} | [{lsb + w - 1}:{lsb}] |")
    return "\n".join(rows) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# From the compiler's program (jaq.hw.schedule) to instruction words
# ---------------------------------------------------------------------------------------------------------------
#: Output precision code of SET_LAYER's ``o_mode``: the operand codes plus 3 for 32-bit outputs.
OUT_MODE_OF_BITS: dict[int, int] = {**MODE_OF_BITS, 32: 3}


def set_layer_fields(kernel: int, stride: int, act_bits: int, wgt_bits: int, act_signed: bool,
                     pe_y: int, out_bits: int = 32, out_signed: bool = True, shift: int = 0,
                     relu: bool = False, res_bits: int = 0, res_signed: bool = False,
                     res_mult: int = 0, dw: bool = False, store_lines: int = 1,
                     overlap: bool = False) -> dict[str, int]:
    """SET_LAYER's fields: kernel, stride, precision codes (:data:`jaq.hw.packing.MODE_OF_BITS`), the RS
    geometry ``rs_r = min(K, Y)`` kernel rows per pass, ``rs_q`` replicas (:func:`jaq.hw.timing.rs_geometry`), and
    the output unit's layer constants (:class:`jaq.hw.requant.Requant`; ``res_mult`` as 32-bit two's
    complement), the residual operand's precision (``res``: the layer has one), ``st_rlog = log2(store_lines)``
    (``n_u``, :func:`jaq.hw.timing.store_lines_per_step`), under the depthwise mapping (``dw``) its window
    groups ``dw_ng`` and channel replicas ``dw_q`` (:func:`jaq.hw.timing.dw_geometry`; 0 otherwise), and
    ``overlap`` (a double-buffered program, docs section 9)."""
    if store_lines not in OUT_UNIT_LINES:
        raise JaqError(f"{store_lines!r} lines per output-unit step; use one of "
                       f"{', '.join(map(str, OUT_UNIT_LINES))}", "store_lines")
    _, q, _ = T.rs_geometry(kernel, stride, pe_y)
    ng, _, dq = T.dw_geometry(kernel, T.fusion_factor(act_bits, wgt_bits), pe_y) if dw else (0, 0, 0)
    return dict(k=kernel, s=stride, a_mode=MODE_OF_BITS[act_bits], w_mode=MODE_OF_BITS[wgt_bits],
                act_signed=int(act_signed), rs_r=min(kernel, pe_y), rs_q=q, shift=shift, relu=int(relu),
                o_mode=OUT_MODE_OF_BITS[out_bits], o_signed=int(out_signed), res=int(bool(res_bits)),
                r_mode=MODE_OF_BITS[res_bits] if res_bits else 0, r_signed=int(res_signed),
                res_mult=int(res_mult) & 0xFFFFFFFF, dw=int(dw), st_rlog=store_lines.bit_length() - 1,
                dw_ng=ng, dw_q=dq, overlap=int(overlap))


def compute_fields(c: int, m: int, h: int, w: int, acc: bool, kernel: int, stride: int, act_bits: int,
                   wgt_bits: int, bus_bits: int, dw_mapped: bool = False,
                   halves: tuple[int, int, int] = (0, 0, 0)) -> dict[str, int]:
    """COMPUTE's fields for tile extents (c', m', h', w'): the extents, ``cv`` channel vectors and the buffer
    geometry in 32-bit words (module docstring: ``iw``, ``pa``, ``pw``, ``po``, ``wm``, ``arow``); under the
    depthwise mapping an act pixel holds the m' channels and ``pw`` is the pitch of one window group's run of
    m' vectors (docs section 8); ``halves``: the (act, wgt, out) buffer halves (section 9)."""
    EW = bus_bits // 32
    pf = T.fusion_factor(act_bits, wgt_bits)
    iw = T.in_extent(w, kernel, stride)
    pa = T.ceil_div(m if dw_mapped else c, T.elems_per_beat(bus_bits, act_bits)) * EW
    pw = T.ceil_div(m * pf if dw_mapped else c, T.elems_per_beat(bus_bits, wgt_bits)) * EW
    po = T.ceil_div(m, T.elems_per_beat(bus_bits, T.OUT_BITS)) * EW
    return dict(c=c, m=m, h=h, w=w, cv=T.ceil_div(c, pf), acc=int(acc), iw=iw,
                pa=pa, pw=pw, po=po, wm=kernel * kernel * pw, arow=iw * pa, act_half=halves[0],
                wgt_half=halves[1], out_half=halves[2])


def _dma(op: str, view_base: int, bits: int, ins, n_outer: int, ostride: int, n_inner: int, istride: int,
         **extra) -> int:
    """A DMA descriptor in bits: the record's element offsets (from a view at bit ``view_base``) times ``bits``."""
    return encode(op, base=view_base + ins.dram_base * bits, n_outer=n_outer, ostride=ostride * bits,
                  n_inner=n_inner, istride=istride * bits, run_len=ins.run_len, half=getattr(ins, "half", 0),
                  **extra)


def encode_instruction(ins, layer, accel, requant=None, placement=None) -> int:
    """Encode one :mod:`jaq.hw.schedule` instruction record for ``layer`` on ``accel``; ``requant`` (a
    :class:`jaq.hw.requant.Requant`, None for the identity) gives SET_LAYER's output-unit constants, ``placement``
    (:class:`jaq.hw.placement.Placement`, the program's) the tensors' bit addresses."""
    K, S = layer.kernel, layer.stride
    op = ins.op
    pl = placement
    if op == "SET_LAYER":
        shift, relu, rm = (requant.shift, requant.relu, requant.res_mult) if requant is not None else (0, False, 0)
        return encode("SET_LAYER", **set_layer_fields(K, S, layer.act_bits, layer.wgt_bits, layer.act_signed,
                                                      accel.pe_y, layer.out_bits, layer.out_signed, shift, relu,
                                                      layer.res_bits, layer.res_signed, rm,
                                                      T.uses_dw_mapping(accel.dataflow, layer.depthwise),
                                                      ins.store_lines, ins.overlap))
    if op == "SET_RES":
        b = layer.res_bits
        return encode(op, base=pl.res.base + ins.dram_base * b, ostride=ins.row_stride * b,
                      istride=ins.col_stride * b)
    if op == "LOAD_SCALE":
        return _dma(op, pl.scale, 32, ins, 1, 0, 1, 0)
    if op == "LOAD_ACT":
        return _dma(op, pl.act.base, layer.act_bits, ins, ins.ih, ins.row_stride, ins.iw, ins.col_stride)
    if op == "LOAD_WGT":
        return _dma(op, pl.wgt, layer.wgt_bits, ins, 1, 0, ins.n_runs, ins.run_stride)
    if op == "LOAD_PSUM":
        return _dma(op, pl.psum.base, 32, ins, ins.h, ins.row_stride, ins.w, ins.col_stride)
    if op == "STORE_OUT":
        view, bits = (pl.out, layer.out_bits) if ins.final else (pl.psum, 32)
        px_lines = T.ceil_div(ins.m, T.elems_per_beat(accel.dram_bits_per_cycle, T.OUT_BITS)) if ins.final else 0
        if ins.final and layer.pool:  # one run: the pooled pixel; the unit sums pool_px pixels per chunk
            return _dma(op, view.base, bits, ins, 1, 0, 1, 0, final=1, pool_px=ins.h * ins.w, px_lines=px_lines)
        return _dma(op, view.base, bits, ins, ins.h, ins.row_stride, ins.w, ins.col_stride, final=int(ins.final),
                    pool_px=0, px_lines=px_lines)
    if op == "COMPUTE":
        f = compute_fields(ins.c, ins.m, ins.h, ins.w, ins.acc, K, S, layer.act_bits, layer.wgt_bits,
                           accel.dram_bits_per_cycle, T.uses_dw_mapping(accel.dataflow, layer.depthwise),
                           (ins.act_half, ins.wgt_half, ins.out_half))
        assert f["cv"] == ins.cv, (f["cv"], ins.cv)
        return encode("COMPUTE", **f)
    if op in ("SYNC", "END"):
        return encode(op)
    raise JaqError(f"unknown instruction {op!r}", "op")


def encode_program(program, accel=None, requant=None) -> list[int]:
    """Instruction words of a compiled :class:`jaq.hw.schedule.Program` (``accel`` defaults to the program's;
    ``requant``: the layer's output-unit constants, None for the identity unit)."""
    accel = accel or program.accel
    if requant is not None and (requant.out_bits, requant.out_signed) != (program.layer.out_bits,
                                                                          program.layer.out_signed):
        raise JaqError(f"the output unit writes {requant.out_bits}-bit outputs but the layer says out_bits="
                       f"{program.layer.out_bits}", "requant.out_bits")
    return [encode_instruction(ins, program.layer, accel, requant, program.placement)
            for ins in program.instructions]
