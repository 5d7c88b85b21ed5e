"""Buffer layouts of resident tiles as 32-bit word images (what the DMA leaves in a buffer; used by unit tests).

Every run (one act pixel, one (oc, kh, kw) weight run, one out pixel) starts on a fresh ``W``-bit line and spans
``ceil(n / E_b)`` lines; a line is ``W/32`` 32-bit words, elements packed LSB first (:mod:`jaq.hw.packing`).
"""

from __future__ import annotations

import math

import numpy as np

from jaq.hw.packing import pack_words, unpack_words


def runs_to_words(runs: np.ndarray, bits: int, W: int) -> list[int]:
    """``runs``: ``(n_runs, n)`` elements -> 32-bit words, each run padded to whole ``W``-bit lines."""
    runs = np.asarray(runs)
    n_runs, n = runs.shape
    E = W // bits
    lpr = max(1, math.ceil(n / E))
    padded = np.zeros((n_runs * lpr, E), np.int64)
    flat = np.zeros((n_runs, lpr * E), np.int64)
    flat[:, :n] = runs
    padded[:] = flat.reshape(n_runs * lpr, E)
    lines = pack_words(padded, bits, W)
    words = []
    for ln in lines:
        words.extend((ln >> (32 * k)) & 0xFFFFFFFF for k in range(W // 32))
    return words


def words_to_runs(words, n_runs: int, n: int, bits: int, W: int, signed: bool) -> np.ndarray:
    """Inverse of :func:`runs_to_words` -> ``(n_runs, n)`` int64."""
    E = W // bits
    lpr = max(1, math.ceil(n / E))
    EW = W // 32
    lines = []
    for r in range(n_runs * lpr):
        ln = 0
        for k in range(EW):
            ln |= int(words[r * EW + k]) << (32 * k)
        lines.append(ln)
    vals = unpack_words(lines, bits, E, signed).reshape(n_runs, lpr * E)
    return vals[:, :n]


def act_tile_words(act: np.ndarray, a: int, W: int) -> list[int]:
    """Activation tile ``[ih'][iw'][c']`` -> buffer words (run per pixel)."""
    ih, iw, c = act.shape
    return runs_to_words(act.reshape(ih * iw, c), a, W)


def wgt_tile_words(wgt: np.ndarray, w: int, W: int) -> list[int]:
    """Weight tile ``[m'][K][K][c']`` -> buffer words (run per (oc, kh, kw))."""
    m, K, _, c = wgt.shape
    return runs_to_words(wgt.reshape(m * K * K, c), w, W)


def out_tile_words(out: np.ndarray, W: int) -> list[int]:
    """Output tile ``[h'][w'][m']`` (32-bit) -> buffer words (run per pixel)."""
    h, w, m = out.shape
    return runs_to_words(out.reshape(h * w, m), 32, W)


def out_tile_from_words(words, h: int, w: int, m: int, W: int) -> np.ndarray:
    return words_to_runs(words, h * w, m, 32, W, True).reshape(h, w, m)
