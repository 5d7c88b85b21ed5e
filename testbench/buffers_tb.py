"""cocotb unit testbenches of rtl_gen.buffers (VectorBuffer, OutBuffer) on Verilator.

Driver: DMA line writes and random array-port traffic, applied at falling edges (the blocks are rising-edge
synchronous); monitor: read data sampled one cycle after the enable; reference model: a Python list of 32-bit
words (a ``W``-bit line = ``W/32`` consecutive words, word ``k`` of line ``l`` = bits ``[32k, 32k+32)``);
checker: every enabled read and every counter. Geometry comes from ``$JAQ_BUF_LINES``/``$JAQ_BUF_W``/``$JAQ_BUF_PORTS``.
"""

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge


def _port(dut, name, i):
    """Element ``i`` of an array port (Amaranth flattens ``name[i]`` to ``name__i``)."""
    return getattr(dut, f"{name}__{i}")


def _geometry():
    return (int(os.environ.get("JAQ_BUF_LINES", "16")), int(os.environ.get("JAQ_BUF_W", "64")),
            int(os.environ.get("JAQ_BUF_PORTS", "3")))


async def _reset(dut):
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for _ in range(2):
        await FallingEdge(dut.clk)
    dut.rst.value = 0


def _line_words(word_line: int, ew: int):
    return [(word_line >> (32 * k)) & 0xFFFFFFFF for k in range(ew)]


@cocotb.test()
async def vector_buffer(dut):
    """Line writes then random multi-port reads; counters == enabled port-cycles and line writes."""
    lines, W, n = _geometry()
    ew = W // 32
    rng = random.Random(3)
    await _reset(dut)
    c0_rd, c0_wr = int(dut.cnt_rd.value), int(dut.cnt_line_wr.value)
    model = [0] * (lines * ew)
    for _ in range(2):  # write every line twice (second pass overwrites)
        for l in range(lines):
            data = rng.getrandbits(W)
            dut.wr_line.value = l
            dut.wr_data.value = data
            dut.wr_en.value = 1
            model[l * ew:(l + 1) * ew] = _line_words(data, ew)
            await FallingEdge(dut.clk)
    dut.wr_en.value = 0
    reads = 0
    for cyc in range(300):
        expect = []
        for i in range(n):
            en = rng.random() < 0.7
            a = rng.randrange(lines * ew)
            _port(dut, "rd_addr", i).value = a
            _port(dut, "rd_en", i).value = int(en)
            expect.append(a if en else None)
            reads += en
        await FallingEdge(dut.clk)  # the rising edge in between performed the enabled reads
        for i in range(n):
            if expect[i] is not None:
                got = int(_port(dut, "rd_data", i).value)
                assert got == model[expect[i]], f"port {i} word {expect[i]}: {got:#x} != {model[expect[i]]:#x}"
    for i in range(n):
        _port(dut, "rd_en", i).value = 0
    await FallingEdge(dut.clk)
    assert int(dut.cnt_rd.value) - c0_rd == reads
    assert int(dut.cnt_line_wr.value) - c0_wr == 2 * lines


@cocotb.test()
async def out_buffer(dut):
    """LOAD_PSUM line writes, array read-modify-writes (add), STORE_OUT line reads; counters."""
    lines, W, n = _geometry()
    ew = W // 32
    rng = random.Random(5)
    await _reset(dut)
    c0 = {k: int(getattr(dut, k).value) for k in ("cnt_rd", "cnt_wr", "cnt_line_wr", "cnt_line_rd")}
    model = [0] * (lines * ew)
    for l in range(lines):
        data = rng.getrandbits(W)
        dut.wr_line.value, dut.wr_data.value, dut.wr_en.value = l, data, 1
        model[l * ew:(l + 1) * ew] = _line_words(data, ew)
        await FallingEdge(dut.clk)
    dut.wr_en.value = 0
    # read-modify-write: each port owns its own word addresses (no two ports touch one word), read in cycle t,
    # write back data + delta in cycle t+1 (the array's pattern)
    words = list(range(lines * ew))
    rng.shuffle(words)
    own = [words[i::n] for i in range(n)]
    n_rd = n_wr = 0
    for r in range(8):
        addrs = [rng.choice(own[i]) for i in range(n)]
        for i in range(n):
            _port(dut, "rmw_raddr", i).value = addrs[i]
            _port(dut, "rmw_ren", i).value = 1
            _port(dut, "rmw_wen", i).value = 0
        n_rd += n
        await FallingEdge(dut.clk)
        for i in range(n):
            got = int(_port(dut, "rmw_rdata", i).value)
            assert got == model[addrs[i]], f"rmw read port {i} word {addrs[i]}: {got:#x} != {model[addrs[i]]:#x}"
            new = (got + rng.randrange(1 << 20)) & 0xFFFFFFFF
            model[addrs[i]] = new
            _port(dut, "rmw_ren", i).value = 0
            _port(dut, "rmw_waddr", i).value = addrs[i]
            _port(dut, "rmw_wdata", i).value = new
            _port(dut, "rmw_wen", i).value = 1
        n_wr += n
        await FallingEdge(dut.clk)
        for i in range(n):
            _port(dut, "rmw_wen", i).value = 0
    # STORE_OUT: line reads, data the cycle after lr_en
    for l in range(lines):
        dut.lr_line.value, dut.lr_en.value = l, 1
        await FallingEdge(dut.clk)
        dut.lr_en.value = 0
        got = int(dut.lr_data.value)
        exp = sum(w << (32 * k) for k, w in enumerate(model[l * ew:(l + 1) * ew]))
        assert got == exp, f"line {l}: {got:#x} != {exp:#x}"
    await FallingEdge(dut.clk)
    cnt = {k: int(getattr(dut, k).value) - v for k, v in c0.items()}
    assert cnt == {"cnt_rd": n_rd, "cnt_wr": n_wr, "cnt_line_wr": lines, "cnt_line_rd": lines}, cnt
