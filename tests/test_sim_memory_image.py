"""Memory images + compiled programs, executed by the tile-level functional model, give the reference output.

This pins the off-chip layouts (activations, per-tile weights from jaq.hw.schedule.arrange_weights, outputs) and
the program's descriptors against sim.reference before any RTL is involved.
"""

from dataclasses import replace

import numpy as np
import pytest

from jaq.hw.placement import arranged_weight_count
from jaq.hw.records import Accelerator, Layer, Tiling
from jaq.hw.schedule import compile_layer
from sim.memory_image import build_image, extract_output, mismatch_summary
from sim.program_model import execute
from sim.reference import random_layer_data

ACC = Accelerator(pe_x=4, pe_y=3, act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64, dram_bits_per_cycle=64,
                  dram_latency_cycles=3, dataflow="WS")

CASES = [
    (Layer("conv", 6, 5, 5, 4, kernel=3, act_bits=8, wgt_bits=4), Tiling(4, 2, 2, 3, "B IC OC OH OW")),
    (Layer("conv", 6, 5, 5, 4, kernel=3, act_bits=8, wgt_bits=4), Tiling(2, 4, 4, 2, "B OH OW OC IC")),
    (Layer("conv", 8, 6, 3, 3, kernel=5, stride=2, groups=2, act_bits=2, wgt_bits=8, act_signed=True),
     Tiling(2, 2, 2, 2, "B OC IC OW OH")),
    (Layer("depthwise", 5, 5, 4, 3, kernel=3, stride=2, groups=5, act_bits=4, wgt_bits=4), Tiling(1, 1, 2, 2)),
    (Layer("depthwise", 13, 13, 3, 3, kernel=5, groups=13, act_bits=4, wgt_bits=4), Tiling(1, 8, 2, 3)),
    (Layer("depthwise", 11, 11, 2, 3, kernel=7, stride=2, groups=11, act_bits=2, wgt_bits=8),
     Tiling(1, 11, 2, 2, "B OW OH OC IC")),
    (Layer("pointwise", 13, 7, 3, 5, kernel=1, act_bits=2, wgt_bits=2), Tiling(8, 4, 2, 4, "B IC OW OH OC")),
    (Layer("fc", 30, 9, 1, 1, act_bits=8, wgt_bits=8), Tiling(16, 4, 1, 1, "B OC IC OH OW")),
]


@pytest.mark.parametrize("double", [False, True], ids=["single", "double"])
@pytest.mark.parametrize("layer,tiling", CASES, ids=[f"{l.kind}-{t.t_ic}{t.t_oc}{t.t_oh}{t.t_ow}" for l, t in CASES])
def test_program_on_images_equals_reference(layer, tiling, double):
    """The program's data flow through the buffer halves (double: docs/execution-model.md section 9) gives the
    integer reference's outputs."""
    data = random_layer_data(layer, rng=5)
    img = build_image(data, tiling, ACC.dataflow, fill="garbage", seed=3)
    assert img.act.size == layer.in_h * layer.in_w * layer.in_ch
    assert img.wgt.size == arranged_weight_count(layer) >= layer.weight_count
    prog = compile_layer(layer, replace(ACC, double_buffer=double), tiling)
    assert (prog.counts_by_op()["SYNC"] > 0) == double
    out = execute(prog, img.act, img.wgt, img.out)
    assert not mismatch_summary(layer, out, img.expected_out)
    np.testing.assert_array_equal(extract_output(layer, out), data.y)


def test_garbage_output_region_is_detected():
    layer, tiling = CASES[0]
    data = random_layer_data(layer, rng=1)
    img = build_image(data, tiling, ACC.dataflow, fill="garbage", seed=3)
    assert np.count_nonzero(img.out != img.expected_out) > 0.9 * img.out.size
    msgs = mismatch_summary(layer, img.out, img.expected_out, limit=2)
    assert len(msgs) == 2 and "expected" in msgs[0]
