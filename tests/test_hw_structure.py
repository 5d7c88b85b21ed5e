"""Structure of jaq.hw: what importing a module pulls in, the cost-model registry, one home per formula."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_reading_accel_json_does_not_import_torch():
    _run("import jaq.accel_json, jaq.hw.records, sys; assert 'torch' not in sys.modules, 'torch imported'")


def test_bitfusion_config_importable_from_both_homes():
    from jaq.hw import bitfusion, records

    assert bitfusion.BitFusionConfig is records.BitFusionConfig
    assert bitfusion.BF_E_CONF is records.BF_E_CONF
