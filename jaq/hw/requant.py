"""The output unit's arithmetic: 32-bit accumulators -> the consumer's 2/4/8-bit integers (or 32-bit logits).

This module is the ONE definition of requantization (docs/execution-model.md, "Output unit"). The PyTorch
integer model (:mod:`jaq.nn.integer`), the simulator's host loop, the RTL output unit
(:mod:`rtl_gen.output_unit`) and its tests all evaluate :meth:`Requant.apply`; nothing else rounds.

Per output channel ``c`` a signed multiplier ``mult[c]`` (:data:`MULT_BITS` bits) and a signed bias ``bias[c]``
(:data:`BIAS_BITS` bits); per layer a right shift ``shift`` (0..:data:`SHIFT_MAX`), a signed residual multiplier
``res_mult`` (:data:`MULT_BITS` bits; 0 without a residual) and the saturation range ``[lo, hi]`` of the output
(the consumer's bits and signedness, with ``lo`` raised to 0 by a ReLU):

    v   = acc * mult[c] + res * res_mult + bias[c]                # per output pixel, exact
    u   = v, or max(v, 0) with ReLU                                # the activation, before rounding
    out = min(max((u + 2^(shift-1)) >> shift, lo), hi)            # >> : floor; no 2^(shift-1) when shift = 0

i.e. round half up (ties toward +infinity) of ``u / 2^shift``, then saturation. With global average pooling
(``pool_pixels = P > 1``, the head layer) ``u`` is the sum over the P pixels of a channel and the real multipliers
are divided by P before they become integers, so ``out`` is the rounded mean of the activations (one rounding).
``acc`` is a signed 32-bit accumulator, ``res`` the residual operand (an integer of the block input, at most 8
bits); :meth:`Requant.from_real` keeps ``P * (2^31 |mult| + 2^9 |res_mult| + |bias|) + 2^shift < 2^63``, so a
64-bit signed datapath never overflows.

:meth:`Requant.from_real` turns real multipliers into these integers with the largest shift that keeps every
constant in range (most precision); a layer whose multipliers cannot be represented is a one-line error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from jaq.errors import JaqError
from jaq.hw.records import OUT_BITS  # the output widths the unit produces

#: Signed bits of a per-channel multiplier and of the residual multiplier.
MULT_BITS = 32
#: Signed bits of a per-channel bias (in units of 2^-shift output LSBs).
BIAS_BITS = 48
#: Largest right shift (a 6-bit field).
SHIFT_MAX = 62

_MULT_MAX = (1 << (MULT_BITS - 1)) - 1
_BIAS_MAX = (1 << (BIAS_BITS - 1)) - 1


def saturation_range(out_bits: int, out_signed: bool, relu: bool) -> tuple[int, int]:
    """``[lo, hi]`` of the output: the ``out_bits``-bit range (signed or unsigned), ``lo`` raised to 0 by ReLU."""
    if out_signed:
        lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    else:
        lo, hi = 0, (1 << out_bits) - 1
    return (max(lo, 0) if relu else lo), hi


@dataclass(frozen=True)
class Requant:
    """Output-unit constants of one layer (see the module docstring for the arithmetic).

    ``mult``/``bias``: one per output channel. ``out_bits`` in :data:`OUT_BITS`; ``out_signed`` the consumer's
    signedness (32-bit outputs are always signed); ``relu`` clamps at 0.
    """

    mult: tuple[int, ...]
    bias: tuple[int, ...]
    shift: int
    res_mult: int = 0
    out_bits: int = 8
    out_signed: bool = False
    relu: bool = False
    pool_pixels: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "mult", tuple(int(v) for v in self.mult))
        object.__setattr__(self, "bias", tuple(int(v) for v in self.bias))
        if len(self.mult) != len(self.bias) or not self.mult:
            raise JaqError(f"{len(self.mult)} multipliers for {len(self.bias)} biases", "requant.mult")
        if self.out_bits not in OUT_BITS:
            raise JaqError(f"output bits {self.out_bits!r} not supported; use one of 2, 4, 8, 32", "requant.out_bits")
        if self.out_bits == 32 and not self.out_signed:
            raise JaqError("32-bit outputs are signed", "requant.out_signed")
        if not 0 <= int(self.shift) <= SHIFT_MAX:
            raise JaqError(f"shift {self.shift} out of range 0..{SHIFT_MAX}", "requant.shift")
        for name, vals, bound in (("mult", self.mult, _MULT_MAX), ("bias", self.bias, _BIAS_MAX),
                                  ("res_mult", (self.res_mult,), _MULT_MAX)):
            if any(not -bound - 1 <= v <= bound for v in vals):
                raise JaqError(f"a value does not fit {bound.bit_length() + 1} signed bits", f"requant.{name}")
        if not 1 <= int(self.pool_pixels) <= 1 << 16:
            raise JaqError(f"{self.pool_pixels} pooled pixels out of range 1..65536", "requant.pool_pixels")
        if not _fits_datapath(max(map(abs, self.mult)), abs(self.res_mult), max(map(abs, self.bias)),
                              self.shift, self.pool_pixels):
            raise JaqError("the constants can overflow the 64-bit datapath", "requant.mult")

    @property
    def channels(self) -> int:
        return len(self.mult)

    @property
    def lo(self) -> int:
        return saturation_range(self.out_bits, self.out_signed, self.relu)[0]

    @property
    def hi(self) -> int:
        return saturation_range(self.out_bits, self.out_signed, self.relu)[1]

    @property
    def has_residual(self) -> bool:
        return self.res_mult != 0

    def apply_one(self, accs: Sequence[int] | int, channel: int, res: Sequence[int] | int = 0) -> int:
        """The unit on the accumulator(s) of one output of channel ``channel``: one ``acc`` (and ``res``), or the
        ``pool_pixels`` accumulators (and residuals) pooled into it. Python ints: the golden definition."""
        accs = [accs] if isinstance(accs, int) else list(accs)
        ress = [res] * len(accs) if isinstance(res, int) else list(res)
        if len(accs) != self.pool_pixels or len(ress) != len(accs):
            raise ValueError(f"{len(accs)} accumulators for {self.pool_pixels} pooled pixels")
        u = 0
        for a, r in zip(accs, ress):
            v = a * self.mult[channel] + r * self.res_mult + self.bias[channel]
            u += max(v, 0) if self.relu else v
        return self._finish(u)

    def _finish(self, u: int) -> int:
        if self.shift:
            u += 1 << (self.shift - 1)
        return min(max(u >> self.shift, self.lo), self.hi)

    def apply(self, acc: Any, res: Any = None, channel_axis: int = -1, pool_axes: tuple[int, ...] = ()) -> Any:
        """The unit on a whole tensor of accumulators (torch or numpy integer array; int64 result).

        ``channel_axis``: the axis of output channels (``-1`` for the accelerator's [OH][OW][M] layout, ``-3``
        for PyTorch's [N][C][H][W]). ``res``: residual integers of the same shape, or None. ``pool_axes``: the
        pixel axes summed when ``pool_pixels > 1`` (kept with size 1); their sizes must multiply to it."""
        xp, acc64 = _int64(acc)
        shape = [1] * acc64.ndim
        shape[channel_axis] = self.channels
        mult = _const(xp, self.mult, acc64).reshape(shape)
        bias = _const(xp, self.bias, acc64).reshape(shape)
        v = acc64 * mult + bias
        if res is not None and self.res_mult:
            v = v + _int64(res)[1] * self.res_mult
        if self.relu:
            v = v.clip(0, None) if xp == "numpy" else v.clamp(min=0)
        if self.pool_pixels > 1 or pool_axes:
            if math.prod(acc64.shape[a] for a in pool_axes) != self.pool_pixels:
                raise ValueError(f"pooling axes {pool_axes} of {tuple(acc64.shape)} are not {self.pool_pixels} pixels")
            v = v.sum(axis=pool_axes, keepdims=True) if xp == "numpy" else v.sum(dim=pool_axes, keepdim=True)
        if self.shift:
            v = v + (1 << (self.shift - 1))
        v = v >> self.shift
        return v.clip(self.lo, self.hi) if xp == "numpy" else v.clamp(self.lo, self.hi)

    def real_multipliers(self) -> tuple[list[float], list[float], float]:
        """(mult / 2^shift, bias / 2^shift, res_mult / 2^shift): the real values the integers stand for."""
        f = 2.0 ** -self.shift
        return [m * f for m in self.mult], [b * f for b in self.bias], self.res_mult * f

    @classmethod
    def from_real(cls, mult: Sequence[float], bias: Sequence[float], res_mult: float | None = None, *,
                  out_bits: int, out_signed: bool, relu: bool, pool_pixels: int = 1,
                  where: str = "layer") -> "Requant":
        """Integer constants for real per-channel multipliers ``mult`` (output LSBs per accumulator unit), real
        biases ``bias`` (output LSBs) and the real residual multiplier (output LSBs per residual unit), each
        divided by ``pool_pixels``: the largest shift at which every constant fits its field and the datapath,
        each constant rounded half away from zero. Raises a one-line :class:`JaqError` naming ``where`` if none
        fits (a multiplier >= 2^31, or NaN)."""
        P = int(pool_pixels)
        mult = [float(v) / P for v in mult]
        bias = [float(v) / P for v in bias]
        res_mult = None if res_mult is None else float(res_mult) / P
        reals = [("multiplier", float(v)) for v in mult] + [("bias", float(v)) for v in bias]
        if res_mult is not None:
            reals.append(("residual multiplier", float(res_mult)))
        for what, v in reals:
            if not math.isfinite(v):
                raise JaqError(f"{what} {v} is not finite; retrain or check the batch-norm statistics", where)
        m_max = max(abs(v) for v in mult) if mult else 0.0
        r_max = abs(res_mult or 0.0)
        b_max = max(abs(v) for v in bias)
        shift = _largest_shift(m_max, r_max, b_max, P)
        if shift is None:
            raise JaqError(f"requantization multiplier {m_max:.6g} or bias {b_max:.6g} overflows the output unit "
                           f"(|multiplier| < 2^{MULT_BITS - 1}, |bias| < 2^{BIAS_BITS - 1} output LSBs); the "
                           f"layer's scales are degenerate", where)
        s = 2.0 ** shift
        return cls(mult=tuple(_round(v * s) for v in mult), bias=tuple(_round(v * s) for v in bias), shift=shift,
                   res_mult=_round((res_mult or 0.0) * s), out_bits=out_bits, out_signed=out_signed, relu=relu,
                   pool_pixels=P)

    @classmethod
    def identity(cls, channels: int) -> "Requant":
        """The unit that writes the 32-bit accumulators unchanged (multiplier 1, bias 0, shift 0)."""
        return cls(mult=(1,) * channels, bias=(0,) * channels, shift=0, out_bits=32, out_signed=True)

    def to_dict(self) -> dict[str, Any]:
        return {"mult": list(self.mult), "bias": list(self.bias), "shift": self.shift, "res_mult": self.res_mult,
                "out_bits": self.out_bits, "out_signed": self.out_signed, "relu": self.relu,
                "pool_pixels": self.pool_pixels}


def _round(x: float) -> int:
    """Round half away from zero (for turning real constants into integers; not the unit's own rounding)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def _fits_datapath(m: int, r: int, b: int, shift: int, pixels: int) -> bool:
    """``P * (2^31 m + 2^9 r + b) + 2^shift < 2^63``: the pooled sum and its rounding stay in 64 bits."""
    return pixels * ((m << 31) + (r << 9) + b) + (1 << shift) < 1 << 63


def _largest_shift(m_max: float, r_max: float, b_max: float, pixels: int) -> int | None:
    for shift in range(SHIFT_MAX, -1, -1):
        s = 2.0 ** shift
        m, r, b = _round(m_max * s), _round(r_max * s), _round(b_max * s)
        if m <= _MULT_MAX and r <= _MULT_MAX and b <= _BIAS_MAX and _fits_datapath(m, r, b, shift, pixels):
            return shift
    return None


def _int64(x: Any):
    """("torch" | "numpy", x as an int64 array of that library)."""
    try:
        import torch
        if isinstance(x, torch.Tensor):
            if x.is_floating_point():
                raise TypeError("the output unit takes integer accumulators")
            return "torch", x.to(torch.int64)
    except ImportError:  # pragma: no cover - torch is a dependency, numpy-only callers still work
        pass
    import numpy as np
    a = np.asarray(x)
    if a.dtype.kind not in "iub":
        raise TypeError("the output unit takes integer accumulators")
    return "numpy", a.astype(np.int64)


def _const(xp: str, values: Sequence[int], like: Any):
    if xp == "torch":
        import torch
        return torch.tensor(values, dtype=torch.int64, device=like.device)
    import numpy as np
    return np.asarray(values, dtype=np.int64)
