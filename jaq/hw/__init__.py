"""Hardware half of JAQ: records, search space, analytical cost model, BatchTile tiling search."""

from jaq.hw.records import (BITS, DATAFLOWS, LAYER_KINDS, LOOP_DIMS, LOOP_ORDER_INDEX, LOOP_ORDERS, Accelerator,
                            Cost, Layer, Tiling, parse_loop_order)

__all__ = ["Accelerator", "Cost", "Layer", "Tiling", "LOOP_DIMS", "LOOP_ORDERS", "LOOP_ORDER_INDEX", "DATAFLOWS",
           "BITS", "LAYER_KINDS", "parse_loop_order"]

_LAZY = {"estimate": "jaq.hw.model", "estimate_one": "jaq.hw.model", "estimate_layers": "jaq.hw.model",
         "batch_tile": "jaq.hw.batchtile", "TileChoice": "jaq.hw.batchtile",
         "compile_layer": "jaq.hw.schedule", "walk": "jaq.hw.schedule"}


def __getattr__(name):  # lazy re-exports: importing jaq.hw stays cheap
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jaq.hw' has no attribute {name!r}")
