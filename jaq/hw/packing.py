"""Operand packing: the ONE definition shared by the compiler's encoder, the RTL generator and the testbench.

A fusion unit (16 2-bit BitBricks, BitFusion, Sharma et al. ISCA 2018) multiplies ``pf(a, w) = (8/a)*(8/w)``
activation/weight pairs per cycle and sums the products (docs/execution-model.md section 1).

Packing rule: ``n`` elements of ``b`` bits go into one integer LSB first, lane ``i`` in bits ``[i*b, (i+1)*b)``;
signed values are stored as ``b``-bit two's complement. An activation vector holds ``pf`` lanes of ``a`` bits
(``64/w`` bits), a weight vector ``pf`` lanes of ``w`` bits (``64/a`` bits). Off-chip beats and buffer lines of
``W`` bits hold ``W/b`` elements packed by the same rule (outputs and partial sums: ``b = 32``).

Scalar helpers use Python integers (any width); the ``*_np`` helpers are numpy-vectorised over leading axes.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from jaq.errors import JaqError

#: Element widths the hardware moves: 2/4/8-bit operands and 32-bit accumulators.
ELEMENT_BITS: tuple[int, ...] = (2, 4, 8, 16, 32)


#: Precision codes of the ISA and the fusion unit (``a_mode`` / ``w_mode``): bits -> code and code -> bits.
MODE_OF_BITS: dict[int, int] = {2: 0, 4: 1, 8: 2}
BITS_OF_MODE: dict[int, int] = {v: k for k, v in MODE_OF_BITS.items()}


def pf(a: int, w: int) -> int:
    """Products per fusion unit per cycle for ``a``-bit activations and ``w``-bit weights: (8/a)*(8/w)."""
    if a not in (2, 4, 8) or w not in (2, 4, 8):
        raise JaqError(f"bits must be 2, 4 or 8, got a={a}, w={w}", "bits")
    return (8 // a) * (8 // w)


def act_vector_bits(a: int, w: int) -> int:
    """Width in bits of one activation vector (``pf*a = 64/w``)."""
    return pf(a, w) * a


def wgt_vector_bits(a: int, w: int) -> int:
    """Width in bits of one weight vector (``pf*w = 64/a``)."""
    return pf(a, w) * w


def value_range(bits: int, signed: bool) -> tuple[int, int]:
    """Inclusive (min, max) of a ``bits``-bit integer."""
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or bits < 1 or bits > 64:
        raise JaqError(f"element width must be 1..64 bits, got {bits!r}", "bits")


def pack_lanes(values: Iterable[int], bits: int) -> int:
    """Pack ``values`` (lane 0 first) into one non-negative integer, lane ``i`` at bits ``[i*bits, (i+1)*bits)``.

    Negative values are stored as ``bits``-bit two's complement. A value outside both the signed and the unsigned
    ``bits``-bit range is an error (it would not round-trip).
    """
    _check_bits(bits)
    mask = (1 << bits) - 1
    lo, hi = -(1 << (bits - 1)), (1 << bits) - 1
    word = 0
    for i, v in enumerate(values):
        v = int(v)
        if v < lo or v > hi:
            raise JaqError(f"lane {i} value {v} does not fit in {bits} bits", "values")
        word |= (v & mask) << (i * bits)
    return word


def unpack_lanes(word: int, bits: int, lanes: int, signed: bool) -> list[int]:
    """Inverse of :func:`pack_lanes`: ``lanes`` values of ``bits`` bits, sign-extended when ``signed``."""
    _check_bits(bits)
    word = int(word)
    mask = (1 << bits) - 1
    out = []
    for i in range(lanes):
        v = (word >> (i * bits)) & mask
        if signed and v >> (bits - 1):
            v -= 1 << bits
        out.append(v)
    return out


def to_unsigned(values, bits: int) -> np.ndarray:
    """``bits``-bit two's complement bit patterns of an integer array (as uint64)."""
    _check_bits(bits)
    v = np.asarray(values).astype(np.int64)
    mask = np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(0xFFFF_FFFF_FFFF_FFFF)
    return v.astype(np.uint64) & mask


def from_unsigned(patterns, bits: int, signed: bool) -> np.ndarray:
    """Integers (int64) from ``bits``-bit patterns, sign-extended when ``signed``."""
    _check_bits(bits)
    p = np.asarray(patterns).astype(np.uint64) & np.uint64((1 << bits) - 1 if bits < 64 else -1 & (2**64 - 1))
    v = p.astype(np.int64)
    if signed and bits < 64:
        v = np.where(v >= (1 << (bits - 1)), v - (1 << bits), v)
    return v


def pack_lanes_np(values, bits: int) -> np.ndarray:
    """Vectorised :func:`pack_lanes` over the last axis: ``(..., n)`` -> ``(...)`` uint64 words (``n*bits <= 64``)."""
    v = np.asarray(values)
    n = v.shape[-1]
    if n * bits > 64:
        raise JaqError(f"{n} lanes of {bits} bits exceed 64 bits; use pack_words for wide words", "values")
    u = to_unsigned(v, bits)
    shifts = (np.arange(n, dtype=np.uint64) * np.uint64(bits))
    return np.bitwise_or.reduce(u << shifts, axis=-1) if n else np.zeros(v.shape[:-1], np.uint64)


def unpack_lanes_np(words, bits: int, lanes: int, signed: bool) -> np.ndarray:
    """Vectorised :func:`unpack_lanes`: ``(...)`` uint64 words -> ``(..., lanes)`` int64 (``lanes*bits <= 64``)."""
    if lanes * bits > 64:
        raise JaqError(f"{lanes} lanes of {bits} bits exceed 64 bits; use unpack_words for wide words", "lanes")
    w = np.asarray(words).astype(np.uint64)[..., None]
    shifts = np.arange(lanes, dtype=np.uint64) * np.uint64(bits)
    return from_unsigned((w >> shifts) & np.uint64((1 << bits) - 1), bits, signed)


def pack_words(values, bits: int, width: int) -> list[int]:
    """Pack rows of elements into ``width``-bit words (Python ints, any width; e.g. W-bit lines or beats).

    ``values``: ``(rows, n)`` integers with ``n * bits <= width``; row ``r`` -> word ``r``, element ``i`` at bits
    ``[i*bits, (i+1)*bits)``. Vectorised through bytes: ``bits`` must divide 8 or be a multiple of 8.
    """
    _check_bits(bits)
    v = np.asarray(values)
    if v.ndim == 1:
        v = v[None, :]
    rows, n = v.shape
    if n * bits > width:
        raise JaqError(f"{n} elements of {bits} bits exceed a {width}-bit word", "values")
    u = to_unsigned(v, bits)
    nbytes = (width + 7) // 8
    if bits % 8 == 0:
        per = bits // 8
        b = np.zeros((rows, nbytes), np.uint8)
        for k in range(per):  # byte k of every element (little endian)
            b[:, k:n * per:per] = ((u >> np.uint64(8 * k)) & np.uint64(0xFF)).astype(np.uint8)
    elif 8 % bits == 0:
        per = 8 // bits
        padded = np.zeros((rows, nbytes * per), np.uint64)
        padded[:, :n] = u
        g = padded.reshape(rows, nbytes, per)
        shifts = np.arange(per, dtype=np.uint64) * np.uint64(bits)
        b = np.bitwise_or.reduce(g << shifts, axis=-1).astype(np.uint8)
    else:
        return [pack_lanes(r, bits) for r in v.tolist()]
    return [int.from_bytes(row.tobytes(), "little") for row in b]


def unpack_words(words: Sequence[int], bits: int, lanes: int, signed: bool) -> np.ndarray:
    """Inverse of :func:`pack_words`: ``len(words)`` wide words -> ``(rows, lanes)`` int64."""
    _check_bits(bits)
    nbits = lanes * bits
    nbytes = (nbits + 7) // 8 + 8
    mask = (1 << nbits) - 1 if nbits else 0
    raw = np.frombuffer(b"".join((int(w) & mask).to_bytes(nbytes, "little") for w in words),
                        np.uint8).reshape(len(words), nbytes)
    if bits % 8 == 0:
        per = bits // 8
        u = np.zeros((len(words), lanes), np.uint64)
        for k in range(per):
            u |= raw[:, k:lanes * per:per].astype(np.uint64)[:, :lanes] << np.uint64(8 * k)
    elif 8 % bits == 0:
        per = 8 // bits
        shifts = np.arange(per, dtype=np.uint8) * np.uint8(bits)
        u = ((raw[:, :, None] >> shifts) & np.uint8((1 << bits) - 1)).reshape(len(words), -1)[:, :lanes]
    else:
        return np.array([unpack_lanes(w, bits, lanes, signed) for w in words], np.int64)
    return from_unsigned(u, bits, signed)


def pack_bytes(values, bits: int) -> bytes:
    """A flat element array as off-chip memory bytes: element ``i`` at bits ``[i*bits, (i+1)*bits)`` of the
    little-endian byte string (the packing rule above applied to a whole tensor; ``bits`` divides 8 or is a
    multiple of 8). The last byte is zero-padded."""
    u = to_unsigned(np.asarray(values).reshape(-1), bits)
    if bits % 8 == 0:
        return u.astype(f"<u{bits // 8}").tobytes() if bits in (8, 16, 32, 64) else \
            b"".join(int(x).to_bytes(bits // 8, "little") for x in u.tolist())
    if 8 % bits:
        raise JaqError(f"{bits}-bit elements do not pack into bytes; use 2, 4, 8, 16 or 32", "bits")
    per = 8 // bits
    padded = np.zeros(-(-u.size // per) * per, np.uint64)
    padded[:u.size] = u
    shifts = np.arange(per, dtype=np.uint64) * np.uint64(bits)
    return np.bitwise_or.reduce(padded.reshape(-1, per) << shifts, axis=-1).astype(np.uint8).tobytes()


def unpack_bytes(data, bits: int, count: int, signed: bool) -> np.ndarray:
    """Inverse of :func:`pack_bytes`: the first ``count`` ``bits``-bit elements of ``data`` as int64."""
    raw = np.frombuffer(bytes(data), np.uint8)
    if bits % 8 == 0:
        per = bits // 8
        raw = raw[:count * per].reshape(count, per).astype(np.uint64)
        u = np.bitwise_or.reduce(raw << (np.arange(per, dtype=np.uint64) * np.uint64(8)), axis=-1) \
            if count else np.zeros(0, np.uint64)
    else:
        if 8 % bits:
            raise JaqError(f"{bits}-bit elements do not pack into bytes; use 2, 4, 8, 16 or 32", "bits")
        per = 8 // bits
        shifts = np.arange(per, dtype=np.uint8) * np.uint8(bits)
        u = ((raw[:, None] >> shifts) & np.uint8((1 << bits) - 1)).reshape(-1)[:count].astype(np.uint64)
    return from_unsigned(u, bits, signed)


def window_vectors(weights: np.ndarray, pf_lanes: int) -> np.ndarray:
    """Depthwise weights ``[m'][K][K]`` as window vectors ``[n_g][m'][pf]``: lane ``l`` of group ``g`` is kernel
    position ``g*pf + l`` (row-major, ``n_g = ceil(K^2/pf)``), zero past ``K^2`` (docs/execution-model.md
    section 8)."""
    w = np.asarray(weights)
    m = w.shape[0]
    flat = w.reshape(m, -1)
    ng = -(-flat.shape[1] // pf_lanes)
    padded = np.zeros((m, ng * pf_lanes), dtype=w.dtype)
    padded[:, :flat.shape[1]] = flat
    return padded.reshape(m, ng, pf_lanes).transpose(1, 0, 2)


def fused_dot(acts: Sequence[int], wgts: Sequence[int]) -> int:
    """Reference of one fusion-unit step: the integer sum of the lane products."""
    return int(sum(int(x) * int(y) for x, y in zip(acts, wgts)))


__all__ = ["pf", "act_vector_bits", "wgt_vector_bits", "value_range", "pack_lanes", "unpack_lanes",
           "pack_lanes_np", "unpack_lanes_np", "pack_words", "unpack_words", "pack_bytes", "unpack_bytes", "to_unsigned", "from_unsigned",
           "window_vectors", "fused_dot", "ELEMENT_BITS"]
