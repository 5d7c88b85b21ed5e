"""BatchTile's objective (JAQ paper, Eq. 9): ``lam_E * E[mJ] + lam_L * L[ms] + lam_A * A[mm²]``, in the units of
the paper's Table 6 (with its lam = 0.33 each the three terms have comparable magnitudes). One definition for
BatchTile, its exhaustive oracle, BitFusion mode's search and the CLI."""

from __future__ import annotations

import math

from jaq.errors import JaqError

#: Paper's default weights (lam_E, lam_L, lam_A) = 0.33 each.
DEFAULT_WEIGHTS = (0.33, 0.33, 0.33)


def objective_value(energy_pj, cycles, clock_mhz, area_mm2, weights=DEFAULT_WEIGHTS):
    """lam_E * E[mJ] + lam_L * L[ms] + lam_A * A[mm²] (floats or tensors; same operation order for both)."""
    lam_e, lam_l, lam_a = weights
    return lam_e * (energy_pj * 1e-9) + lam_l * (cycles / (clock_mhz * 1e3)) + lam_a * area_mm2


def check_weights(weights) -> tuple[float, float, float]:
    """The weights as three floats, or a one-line :class:`JaqError` naming ``weights``."""
    if len(weights) != 3 or any((not isinstance(w, (int, float))) or w < 0 or math.isnan(w) for w in weights):
        raise JaqError("expected three non-negative numbers (lam_E, lam_L, lam_A)", "weights")
    return tuple(float(w) for w in weights)
