"""Hardware half of JAQ: records, search space, analytical cost model, BatchTile tiling search."""

from jaq.hw.records import (BITS, DATAFLOWS, LAYER_KINDS, LOOP_DIMS, LOOP_ORDER_INDEX, LOOP_ORDERS, Accelerator,
                            Cost, Layer, Tiling, parse_loop_order)

__all__ = ["Accelerator", "Cost", "Layer", "Tiling", "LOOP_DIMS", "LOOP_ORDERS", "LOOP_ORDER_INDEX", "DATAFLOWS",
           "BITS", "LAYER_KINDS", "parse_loop_order"]
