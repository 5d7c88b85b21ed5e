"""Structure of jaq.hw: what importing a module pulls in, the cost-model registry, one home per formula."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jaq.errors import JaqError
from jaq.hw.records import Accelerator

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_reading_accel_json_does_not_import_torch():
    _run("import jaq.accel_json, jaq.hw.records, sys; assert 'torch' not in sys.modules, 'torch imported'")


def test_bitfusion_config_importable_from_both_homes():
    from jaq.hw import bitfusion, records

    assert bitfusion.BitFusionConfig is records.BitFusionConfig
    assert bitfusion.BF_E_CONF is records.BF_E_CONF


def test_cost_models_are_a_registry_keyed_by_the_accel_json_modes():
    from jaq import accel_json
    from jaq.hw import model, records

    assert tuple(model.COST_MODELS) == records.COST_MODES == accel_json.MODES == model.MODES
    with __import__("pytest").raises(ValueError, match="unknown cost-model mode"):
        model.estimate(None, None, None, mode="eyeriss")


def test_no_import_loop_between_search_model_and_bitfusion():
    # bitfusion needs only the objective (jaq.hw.objective), not the search that uses the model
    _run("import jaq.hw.bitfusion, sys; assert 'jaq.hw.batchtile' not in sys.modules, 'batchtile imported'")
    _run("import jaq.hw.batchtile, sys; assert 'jaq.hw.oracle' not in sys.modules, 'oracle imported by the search'")


def test_one_home_for_the_objective():
    from jaq.hw import batchtile, bitfusion, objective, oracle

    assert batchtile.objective_value is objective.objective_value is bitfusion.objective_value
    assert oracle.DEFAULT_WEIGHTS is objective.DEFAULT_WEIGHTS


@pytest.mark.parametrize("bad", [0, 3, 32, True, 4.0, "4"])
def test_out_unit_lines_is_checked_by_every_constructor(bad):
    """Section 7.4's N_u: the accelerator record, the DMA and the OBUF refuse a value they cannot build."""
    from rtl_gen.buffers import OutBuffer
    from rtl_gen.dma import DMA
    with pytest.raises(JaqError) as e:
        Accelerator(out_unit_lines=bad)
    assert str(e.value).startswith("accelerator.out_unit_lines:") and "\n" not in str(e.value)
    with pytest.raises(JaqError, match="dma.store_lines"):
        DMA(64, 8, store_lines=bad)
    if bad != 3:  # 3 read ports is a buildable OBUF
        with pytest.raises(JaqError, match="out_buffer.read_lines"):
            OutBuffer(16, 64, 1, read_lines=bad)
