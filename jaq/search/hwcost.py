"""The differentiable hardware cost of the co-search (paper Eq. 9) and the per-iteration hardware search.

``E_HW = lambda_E * E / E_ref + lambda_L * L / L_ref + lambda_A * A / A_ref``

* E (pJ per image), L (ms per image) and A (mm²) are the cost model's (:func:`jaq.hw.model.estimate`) energy,
  latency and area of the network on the generated accelerator.
* **Normalisation.** ``E_ref, L_ref, A_ref`` are the same three quantities for the *initial* supernet (the
  expectation under the initial alpha/beta) on the *reference accelerator* (``jaq.hw.Accelerator()`` defaults:
  16x16 PEs, 128 KB buffers, WS), fixed once at the start of a run and saved with it. So each term is O(1) (1.0
  for the starting point) and ``lambda`` trades cross-entropy (nats) against "fractions of the starting
  hardware cost". The paper's lambdas (0.0005..0.004) were set for its own un-normalised units; with this
  normalisation the sweep values of the configs are larger (docs/co-search.md).
* **Expectation over candidates.** E and L are taken in expectation over the operator choice (alpha
  probabilities) and, per operator, over the activation and weight bits (beta probabilities):
  ``E = sum_rows p_op * sum_{a,w} p_act[a] * p_wgt[w] * E(row, a, w)``. Every candidate layer is evaluated at
  all 3x3 bit pairs in one batched estimator call, so the gradient reaches alpha and beta exactly (no sampling),
  and the accelerator's float fields (PE counts, buffer KB; straight-through one-hots of the generator) carry
  the gradient to the generator through the cost model.
* **Tilings (BatchTile).** As in the paper, BatchTile runs on the current hardware choice (the argmax
  accelerator) every iteration. The candidate layers' tilings come from a cache keyed by (layer shape + bits,
  accelerator): a miss runs BatchTile once for all missing layers in one batched call; as the generator
  settles, the accelerator stops changing and an iteration costs one estimator call. Tilings are constants
  for the gradient (the cost model is differentiated at fixed tiles).
* **Dataflow and loop order.** These heads choose indices, not magnitudes. Their gradient comes from the
  alternatives' costs on the current optimal subnet: all three dataflows and the ``k`` most likely loop orders
  (including the chosen one) are evaluated at the chosen tiles, and E_HW is multiplied by
  ``r = sum_c h_c * C_c / C_sel`` (h: straight-through one-hot, C: detached normalised E+L cost), which is
  exactly 1 in the forward pass and sends ``C_c / C_sel`` to each option's soft probability in the backward
  pass (a Gumbel straight-through estimator restricted to the evaluated options).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from jaq.hw.batch import DTYPE, AccelBatch, LayerBatch, TileBatch
from jaq.hw.records import BITS, DATAFLOWS, Accelerator, Layer, Tiling



def _estimate(lb: LayerBatch, ab: AccelBatch, tb: TileBatch):
    from jaq.hw.model import estimate
    return estimate(lb, ab, tb)


def _batch_tile(layers: Sequence[Layer], accel: Accelerator, weights):
    from jaq.hw.batchtile import batch_tile
    return batch_tile(list(layers), accel, weights=weights, mode="native", loop_orders="accel", dataflows="accel")


def layer_key(l: Layer) -> tuple:
    return (l.kind, l.in_ch, l.out_ch, l.out_h, l.out_w, l.kernel, l.stride, l.groups, l.act_bits, l.wgt_bits)


def accel_key(a: Accelerator) -> tuple:
    return (a.pe_x, a.pe_y, a.act_buf_kb, a.wgt_buf_kb, a.out_buf_kb, a.dataflow, a.loop_order_id, a.clock_mhz,
            a.dram_bits_per_cycle, a.dram_latency_cycles)


@dataclass
class CandidateRows:
    """The supernet's candidate layers as flat rows (built from ``Supernet.candidates()``).

    ``layers``: R layer templates (their bits are ignored); ``op_prob`` [R]: probability that the row's operator
    is chosen (1 for fixed layers); ``act_prob``/``wgt_prob`` [R, nb]: probabilities of the ``bits`` (2/4/8 by default).
    """

    layers: list[Layer]
    op_prob: torch.Tensor
    act_prob: torch.Tensor
    wgt_prob: torch.Tensor
    bits: tuple[int, ...] = BITS


@dataclass
class HWCostResult:
    """One evaluation. ``loss`` = E_HW (scalar tensor, differentiable); the rest are floats for logging."""

    loss: torch.Tensor
    energy_pj: float          # expected energy per image
    latency_ms: float         # expected latency per image
    area_mm2: float
    terms: dict[str, float]   # normalised E, L, A terms
    accelerator: Accelerator  # the discrete accelerator that was evaluated
    batchtile_s: float        # seconds spent in BatchTile this call (0 when every tiling was cached)
    batchtile_layers: int     # layers BatchTile searched this call


class TilingCache:
    """(layer shape + bits, accelerator) -> best :class:`Tiling` (and its Cost), filled by BatchTile."""

    def __init__(self, weights: tuple[float, float, float], max_entries: int = 500_000):
        self.weights = weights
        self.max_entries = max_entries
        self._d: dict[tuple, Any] = {}

    def __len__(self) -> int:
        return len(self._d)

    def get_many(self, layers: Sequence[Layer], accel: Accelerator) -> tuple[list, float, int]:
        """TileChoices for ``layers`` on ``accel``; returns (choices, seconds in BatchTile, layers searched)."""
        import time
        ak = accel_key(accel)
        keys = [(layer_key(l), ak) for l in layers]
        missing: dict[tuple, Layer] = {}
        for k, l in zip(keys, layers):
            if k not in self._d and k not in missing:
                missing[k] = l
        dt = 0.0
        if missing:
            if len(self._d) + len(missing) > self.max_entries:
                self._d.clear()
            t0 = time.perf_counter()
            choices = _batch_tile(list(missing.values()), accel, self.weights)
            dt = time.perf_counter() - t0
            for k, c in zip(missing, choices):
                self._d[k] = c
        return [self._d[k] for k in keys], dt, len(missing)


def _bit_expanded(templates: Sequence[Layer], bits: Sequence[int] = BITS) -> list[Layer]:
    """Each template at every (act, wgt) bit pair, act-major: row r*nb*nb + i*nb + j has bits[i], bits[j]."""
    return [t.with_bits(a, w) for t in templates for a in bits for w in bits]


def tile_batch(tilings: Sequence[Tiling], loop_order: int | None = None) -> TileBatch:
    tb = TileBatch.from_tilings(list(tilings))
    if loop_order is not None:
        tb.loop_order = torch.full_like(tb.loop_order, loop_order)
    return tb


_PLAN_IDS = itertools.count(1)


@dataclass
class _RowPlan:
    """The candidate rows' bit expansion reduced to distinct layers (what the cost model must evaluate).

    ``uniq``: the U distinct (shape, bits) layers; ``inv`` [R * nb * nb]: expanded row -> index into ``uniq``
    (expanded rows are act-major, as :func:`_bit_expanded`); ``lb``: ``uniq`` as a LayerBatch; ``search``: the
    layers BatchTile is asked for (``uniq`` itself, or with ``shared`` tiling the distinct widest-bit layers)
    and ``search_of_uniq`` [U]: which of them gives each distinct row its tiling.
    """

    uniq: list[Layer]
    inv: torch.Tensor
    lb: LayerBatch
    search: list[Layer]
    search_of_uniq: torch.Tensor
    uid: int = 0  # distinct per plan built (keys the per-accelerator tiling batches)

    @classmethod
    def build(cls, templates: Sequence[Layer], bits: Sequence[int], candidate_tiling: str) -> "_RowPlan":
        index: dict[tuple, int] = {}
        uniq: list[Layer] = []
        inv: list[int] = []
        for l in _bit_expanded(templates, bits):
            k = layer_key(l)
            j = index.get(k)
            if j is None:
                j = index[k] = len(uniq)
                uniq.append(l)
            inv.append(j)
        if candidate_tiling == "shared":
            # one BatchTile per layer shape at the widest bits; that tiling is legal at every narrower pair
            # (buffer lines only shrink with fewer bits), so it is reused for all nb*nb bit pairs
            top = max(bits)
            s_index: dict[tuple, int] = {}
            search: list[Layer] = []
            s_of_u: list[int] = []
            for l in uniq:
                t = l.with_bits(top, top)
                k = layer_key(t)
                if k not in s_index:
                    s_index[k] = len(search)
                    search.append(t)
                s_of_u.append(s_index[k])
        else:
            search, s_of_u = uniq, list(range(len(uniq)))
        return cls(uniq, torch.tensor(inv, dtype=torch.long), LayerBatch.from_layers(uniq), search,
                   torch.tensor(s_of_u, dtype=torch.long), next(_PLAN_IDS))


class HWCost:
    """Evaluates E_HW for (candidate rows, argmax subnet, generated accelerator); see module docstring.

    ``lambdas``: (lambda_E, lambda_L, lambda_A). ``fixed``: the non-searched accelerator fields (clock,
    bandwidth, latency). ``loop_order_candidates``: k of the loop-order relaxation. ``candidate_tiling``:
    ``exact`` (BatchTile per candidate layer and bit pair) or ``shared`` (per candidate layer at the widest bits,
    reused for every bit pair: nb² fewer BatchTile searches, for large spaces on CPUs). The derived subnet's
    layers always get their exact BatchTile tilings.
    """

    def __init__(self, lambdas: tuple[float, float, float], fixed: dict, loop_order_candidates: int = 8,
                 refs: dict | None = None, candidate_tiling: str = "exact"):
        if candidate_tiling not in ("exact", "shared"):
            raise ValueError(f"candidate_tiling must be exact or shared, got {candidate_tiling!r}")
        self.candidate_tiling = candidate_tiling
        self.lambdas = tuple(float(x) for x in lambdas)
        self.fixed = dict(fixed)
        self.k_lo = int(loop_order_candidates)
        self.refs = dict(refs) if refs else None  # {"energy_pj", "latency_ms", "area_mm2"}
        self.bt_weights: tuple[float, float, float] | None = None  # BatchTile's weights (fixed at calibration)
        self._lb_cache: dict[tuple, LayerBatch] = {}
        self._plans: dict[tuple, _RowPlan] = {}
        self._tile_batches: dict[tuple, TileBatch] = {}  # (plan, accelerator) -> tilings; tied to self.cache
        self._set_cache(self._bt_weights())

    def _set_cache(self, weights: tuple[float, float, float]) -> None:
        """A fresh tiling cache for BatchTile objective ``weights`` (and drop tilings derived from the old one)."""
        self.cache = TilingCache(weights)
        self._tile_batches.clear()

    # -- normalisation -----------------------------------------------------------------------------------
    def _bt_weights(self) -> tuple[float, float, float]:
        """BatchTile's objective weights: the Eq. 9 weights divided by the references (same trade-off).

        BatchTile's objective is ``wE * E[mJ] + wL * L[ms] + wA * A[mm²]`` (jaq.hw.objective.objective_value);
        before calibration the raw lambdas are used (the paper's weighting in those units)."""
        if self.bt_weights is not None:
            return self.bt_weights
        if not self.refs:
            return self.lambdas
        return self._bt_weights_from(self.refs)

    def reference_accelerator(self) -> Accelerator:
        return Accelerator(**self.fixed)

    @torch.no_grad()
    def calibrate(self, rows: CandidateRows) -> dict:
        """Fix E_ref, L_ref, A_ref: the expected cost of ``rows`` on the reference accelerator.

        Two passes: tilings chosen with the raw lambdas give first references; BatchTile's weights are then
        fixed to the lambdas over those references, and the references are re-measured with the tilings these
        weights choose (so the normalised cost is exactly 1.0 at the starting point)."""
        acc = self.reference_accelerator()
        ab = AccelBatch.from_accels([acc])
        self.refs, self.bt_weights = None, None
        self._set_cache(self._bt_weights())
        e, l, a, _ = self._expected(rows, acc, ab)
        self.refs = {"energy_pj": float(e), "latency_ms": float(l), "area_mm2": float(a)}
        self.bt_weights = self._bt_weights_from(self.refs)
        self._set_cache(self.bt_weights)
        e, l, a, _ = self._expected(rows, acc, ab)
        self.refs = {"energy_pj": float(e), "latency_ms": float(l), "area_mm2": float(a)}
        return dict(self.refs)

    def _bt_weights_from(self, refs: dict) -> tuple[float, float, float]:
        return (self.lambdas[0] / (refs["energy_pj"] * 1e-9), self.lambdas[1] / refs["latency_ms"],
                self.lambdas[2] / refs["area_mm2"])

    # -- pieces --------------------------------------------------------------------------------------------
    def _layer_batch(self, layers: list[Layer]) -> LayerBatch:
        key = tuple(layer_key(l) for l in layers)
        lb = self._lb_cache.get(key)
        if lb is None:
            if len(self._lb_cache) > 64:
                self._lb_cache.clear()
            lb = LayerBatch.from_layers(layers)
            self._lb_cache[key] = lb
        return lb

    def _row_plan(self, rows: CandidateRows) -> "_RowPlan":
        """The distinct (layer shape, bits) rows behind ``rows`` (cached: the candidate layers are static)."""
        key = (tuple(layer_key(t) for t in rows.layers), tuple(rows.bits), self.candidate_tiling)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) > 16:
                self._plans.clear()
            plan = _RowPlan.build(rows.layers, rows.bits, self.candidate_tiling)
            self._plans[key] = plan
        return plan

    def _plan_tiles(self, plan: "_RowPlan", acc: Accelerator) -> tuple[TileBatch, float, int]:
        """BatchTile tilings of the plan's distinct rows on ``acc`` as a TileBatch (+ BatchTile s, layers)."""
        choices, dt, n = self.cache.get_many(plan.search, acc)
        ck = (plan.uid, accel_key(acc))
        tb = self._tile_batches.get(ck)
        if tb is None:
            if len(self._tile_batches) > 32:
                self._tile_batches.clear()
            tb = tile_batch([choices[i].tiling for i in plan.search_of_uniq.tolist()])
            self._tile_batches[ck] = tb
        return tb, dt, n

    def _expected(self, rows: CandidateRows, acc: Accelerator, ab: AccelBatch):
        """Expected (energy pJ, latency ms, area mm²) tensors, plus (BatchTile seconds, layers searched).

        The cost model runs once per *distinct* (layer shape, bits) row (the CIFAR space's 4,809 expanded rows
        hold 1,071 distinct ones); the probabilities of equal rows are summed first (``index_add``), which is
        the same expectation."""
        plan = self._row_plan(rows)
        tb, dt, n = self._plan_tiles(plan, acc)
        U = len(plan.uniq)
        cb = _estimate(plan.lb, ab.expand_to(U), tb)
        cpu = dict(device="cpu", dtype=DTYPE)  # the cost model runs on the CPU; .to keeps the autograd path
        w = (rows.op_prob.to(**cpu)[:, None, None] * rows.act_prob.to(**cpu)[:, :, None]
             * rows.wgt_prob.to(**cpu)[:, None, :]).reshape(-1)
        wu = torch.zeros(U, **cpu).index_add(0, plan.inv, w)
        return (wu * cb.energy_total_pj).sum(), (wu * cb.latency_ms).sum(), cb.area_mm2.reshape(-1)[0], (dt, n)

    def _variant_ratio(self, subnet: list[Layer], acc: Accelerator, ab: AccelBatch, sample) -> torch.Tensor:
        """The dataflow / loop-order relaxation factor r (1.0 forward; see module docstring)."""
        choices, _, _ = self.cache.get_many(subnet, acc)
        tilings = [c.tiling for c in choices]
        n = len(subnet)
        lb = self._layer_batch(subnet)
        sel_lo = sample.index["loop_order"]
        probs = sample.probs["loop_order"].detach().cpu()
        order = torch.argsort(probs, descending=True).tolist()
        los = [sel_lo] + [o for o in order if o != sel_lo][: max(0, self.k_lo - 1)]
        variants = [(d, sel_lo) for d in range(len(DATAFLOWS))] + [(sample.index["dataflow"], o) for o in los]
        V = len(variants)
        lbv = LayerBatch(**{k: v.repeat(V) for k, v in vars(lb).items()})
        tb = tile_batch(tilings)
        tbv = TileBatch(**{k: v.repeat(V) for k, v in vars(tb).items()})
        tbv.loop_order = torch.tensor([o for _, o in variants], dtype=torch.long).repeat_interleave(n)
        abv = AccelBatch(**{k: v.detach().expand(n * V).clone() for k, v in vars(ab).items()})
        abv.dataflow = torch.tensor([d for d, _ in variants], dtype=torch.long).repeat_interleave(n)
        with torch.no_grad():
            cb = _estimate(lbv, abv, tbv)
            e = cb.energy_total_pj.reshape(V, n).sum(1)
            l = cb.latency_ms.reshape(V, n).sum(1)
            c = self.lambdas[0] * e / self.refs["energy_pj"] + self.lambdas[1] * l / self.refs["latency_ms"]
            c = c.clamp_min(1e-12)
        nd = len(DATAFLOWS)
        h_df = sample.onehot["dataflow"].to(device="cpu", dtype=DTYPE)
        r_df = (h_df * c[:nd]).sum() / c[sample.index["dataflow"]]
        h_lo = sample.onehot["loop_order"].to(device="cpu", dtype=DTYPE)[torch.tensor(los)]
        r_lo = (h_lo * c[nd:]).sum() / c[nd]
        return r_df * r_lo

    # -- the cost --------------------------------------------------------------------------------------------
    def __call__(self, rows: CandidateRows, subnet: list[Layer], sample) -> HWCostResult:
        """E_HW for the candidate rows (expectation), the argmax ``subnet`` and a generator ``sample``."""
        if self.refs is None:
            self.calibrate(rows)
        acc = sample.accelerator(self.fixed)
        ab = sample.accel_batch(self.fixed)
        e, l, a, (dt, n) = self._expected(rows, acc, ab)
        lE, lL, lA = self.lambdas
        tE = e / self.refs["energy_pj"]
        tL = l / self.refs["latency_ms"]
        tA = a / self.refs["area_mm2"]
        loss = lE * tE + lL * tL + lA * tA
        if subnet:
            loss = loss * self._variant_ratio(subnet, acc, ab, sample)
        f = lambda t: float(t.detach())  # noqa: E731
        return HWCostResult(loss=loss, energy_pj=f(e), latency_ms=f(l), area_mm2=f(a),
                            terms={"E": f(tE), "L": f(tL), "A": f(tA)}, accelerator=acc,
                            batchtile_s=dt, batchtile_layers=n)

    def final(self, subnet: list[Layer], acc: Accelerator) -> list:
        """BatchTile choices (tiling + Cost) of the derived ``subnet`` on the final accelerator."""
        choices, _, _ = self.cache.get_many(subnet, acc)
        return choices

    def state_dict(self) -> dict:
        return {"refs": self.refs, "bt_weights": self.bt_weights}

    def load_state_dict(self, d: dict) -> None:
        self.refs = d.get("refs")
        bw = d.get("bt_weights")
        self.bt_weights = tuple(bw) if bw is not None else None
        self._set_cache(self._bt_weights())
