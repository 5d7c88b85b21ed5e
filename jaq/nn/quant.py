"""The quantizer Q(.) of the paper (Eq. 2), its integer form for the accelerator, and the straight-through estimator.

Eq. 2:  Q(V) = round(clip(V / s, min_b, max_b)) * s,   s = (max(V) - min(V)) / (2^b - 1).

Conventions (docs/supernet.md, "Signedness"):

* No zero point: the accelerator multiplies raw integers, so 0.0 is always the integer 0.
* Weights are signed, integer range ``[-2^(b-1), 2^(b-1) - 1]``; the scale uses the range of the whole weight
  tensor (per tensor, per layer).
* Activations are unsigned, ``[0, 2^b - 1]``, where they come out of a ReLU; signed (same range as weights) where
  they do not (the network input and every MBConv block output: linear projection + BN (+ residual)).
* The range that sets the scale always includes 0: ``s = (max(hi, 0) - min(lo, 0)) / (2^b - 1)`` for signed
  tensors and ``s = max(hi, 0) / (2^b - 1)`` for unsigned ones (an unsigned grid starts at 0; without a zero
  point a positive minimum cannot be used). With no zero point a signed, asymmetric range overflows one end
  of the grid a little; those values clip, as Eq. 2 says.
* Rounding is ``torch.round`` (round half to even). The order is Eq. 2's: clip, then round (identical to round
  then clip because the bounds are integers).

:func:`quantize_int` is THE definition of the integers the accelerator computes on (the RTL simulator and the
integer model call it); the training fake-quant is literally ``int * scale`` through the same code path
(:func:`round_clip`), so exported integers equal the ones training saw.
"""

from __future__ import annotations

import torch

#: Smallest scale (avoids division by zero on an all-zero tensor).
EPS_SCALE = 1e-8


def int_range(bits: int, signed: bool) -> tuple[int, int]:
    """Integer range of a ``bits``-bit value: signed ``[-2^(b-1), 2^(b-1)-1]``, unsigned ``[0, 2^b-1]``."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def int_ranges(bits: torch.Tensor, signed: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Vectorised :func:`int_range` over a tensor of bit widths (float tensors, same shape as ``bits``)."""
    p = torch.pow(2.0, bits)
    if signed:
        return -p / 2, p / 2 - 1
    return torch.zeros_like(p), p - 1


def minmax_scale(lo: torch.Tensor, hi: torch.Tensor, bits: torch.Tensor, signed: bool) -> torch.Tensor:
    """Eq. 2's scale s = (max - min) / (2^b - 1), with the range widened to include 0 (see module docstring).

    ``lo``/``hi`` are the observed min/max (scalars or broadcastable tensors), ``bits`` a tensor of bit widths;
    returns ``s`` broadcast over them, in the dtype of ``lo``. Not differentiable (scales are statistics).
    """
    lo = lo.detach()
    hi = hi.detach()
    span = hi.clamp(min=0) - (lo.clamp(max=0) if signed else torch.zeros_like(lo))
    levels = torch.pow(2.0, bits.to(span.dtype)) - 1
    return (span / levels).clamp(min=EPS_SCALE)


def round_clip(x: torch.Tensor, scale: torch.Tensor, lo, hi) -> torch.Tensor:
    """round(clip(x / scale, lo, hi)) as a float tensor of integers (broadcasting). The one shared definition."""
    return torch.round(torch.clamp(x / scale, lo, hi))


def quantize_int(x: torch.Tensor, bits: int, signed: bool, scale: float | torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize ``x`` to ``bits``-bit integers: returns ``(ints as int64, scale as a 0-d tensor of x's dtype)``.

    ``scale`` None: Eq. 2 min-max scale from ``x`` itself (how weights are quantized); else the given scale
    (how activations are quantized with a calibrated/running range). ``ints * scale`` is the fake-quant value.
    """
    if bits not in (2, 4, 8):
        raise ValueError(f"bits must be 2, 4 or 8, got {bits}")
    x = x.detach()
    b = torch.tensor(float(bits), dtype=x.dtype)
    if scale is None:
        s = minmax_scale(x.min(), x.max(), b, signed)
    else:
        s = torch.as_tensor(scale, dtype=x.dtype).detach()
    lo, hi = int_range(bits, signed)
    return round_clip(x, s, lo, hi).to(torch.int64), s


def dequantize(q: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Integer tensor back to real values: q * scale."""
    return q.to(torch.as_tensor(scale).dtype if torch.is_tensor(scale) else torch.float32) * scale


class _FakeQuantSTE(torch.autograd.Function):
    """y = round(clip(x/s, lo, hi)) * s with the clipped straight-through estimator:
    dy/dx = 1 where lo <= x/s <= hi, else 0. ``s``, ``lo``, ``hi`` are constants (no gradient).

    Broadcasts: ``x`` of shape [1, ...] with ``s`` of shape [m, 1, ...] gives m quantized copies in one call
    (one per bit candidate); the gradient is summed back to x's shape. Saves only x and the small s/lo/hi
    tensors (the mask is recomputed in backward), so the op itself stores nothing per bit candidate.
    """

    @staticmethod
    def forward(ctx, x, scale, lo, hi):  # noqa: D401
        ctx.save_for_backward(x, scale, lo, hi)
        return round_clip(x, scale, lo, hi) * scale

    @staticmethod
    def backward(ctx, grad):
        x, scale, lo, hi = ctx.saved_tensors
        u = x / scale
        g = grad * ((u >= lo) & (u <= hi)).to(grad.dtype)
        if g.shape != x.shape:
            g = g.sum_to_size(x.shape)
        return g, None, None, None


def fake_quant(x: torch.Tensor, scale: torch.Tensor, lo, hi) -> torch.Tensor:
    """Differentiable Q(x) (Eq. 2) with the clipped STE; ``lo``/``hi`` numbers or tensors broadcastable to x."""
    lo_t = torch.as_tensor(lo, dtype=x.dtype, device=x.device)
    hi_t = torch.as_tensor(hi, dtype=x.dtype, device=x.device)
    return _FakeQuantSTE.apply(x, scale.detach().to(x.dtype), lo_t, hi_t)


def fake_quant_multi(x: torch.Tensor, bits: torch.Tensor, signed: bool, lo_obs: torch.Tensor,
                     hi_obs: torch.Tensor) -> torch.Tensor:
    """Q_b(x) for every bit width in ``bits`` (1-D float tensor of m widths) at once: shape [m, *x.shape].

    ``lo_obs``/``hi_obs``: the observed range that sets the scales (Eq. 2).
    """
    m = bits.numel()
    view = (m,) + (1,) * x.dim()
    s = minmax_scale(lo_obs, hi_obs, bits.to(x.dtype), signed).view(view)
    lo, hi = int_ranges(bits.to(x.dtype), signed)
    return _FakeQuantSTE.apply(x.unsqueeze(0), s, lo.view(view), hi.view(view))


class _MixedFakeQuant(torch.autograd.Function):
    """sum_k w_k * Q_k(x) (Eq. 5) in one op that saves only x and the small per-candidate tensors: the m
    quantized copies are recomputed in backward (for dL/dw_k = <dL/dy, Q_k(x)>) instead of being stored.
    ``scale``/``lo``/``hi``: [m, 1, ...]; ``w``: [m]. Clipped STE for x, as :class:`_FakeQuantSTE`."""

    @staticmethod
    def forward(ctx, x, scale, lo, hi, w):  # noqa: D401
        ctx.save_for_backward(x, scale, lo, hi, w)
        wv = w.view((-1,) + (1,) * x.dim())
        return (wv * (round_clip(x.unsqueeze(0), scale, lo, hi) * scale)).sum(0)

    @staticmethod
    def backward(ctx, grad):
        x, scale, lo, hi, w = ctx.saved_tensors
        wv = w.view((-1,) + (1,) * x.dim())
        gx = gw = None
        if ctx.needs_input_grad[0]:
            u = x.unsqueeze(0) / scale
            gx = (wv * ((u >= lo) & (u <= hi)).to(grad.dtype)).sum(0) * grad
        if ctx.needs_input_grad[4]:
            q = round_clip(x.unsqueeze(0), scale, lo, hi) * scale
            gw = (q * grad.unsqueeze(0)).reshape(q.shape[0], -1).sum(1)
        return gx, None, None, None, gw


def mixed_fake_quant(x: torch.Tensor, bits: torch.Tensor, signed: bool, lo_obs: torch.Tensor,
                     hi_obs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``mix_bits(fake_quant_multi(x, ...), weights)`` without storing the m quantized copies for backward
    (recomputed instead). Used for the weights (Eq. 5's W~); same forward values and gradients."""
    m = bits.numel()
    view = (m,) + (1,) * x.dim()
    s = minmax_scale(lo_obs, hi_obs, bits.to(x.dtype), signed).view(view)
    lo, hi = int_ranges(bits.to(x.dtype), signed)
    return _MixedFakeQuant.apply(x, s, lo.view(view), hi.view(view), weights)


def mix_bits(q: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Eq. 5's sum over bit candidates: sum_k weights[k] * q[k] (q: [m, ...]); ``weights`` None means m == 1."""
    if weights is None:
        return q[0]
    return (weights.view((-1,) + (1,) * (q.dim() - 1)) * q).sum(0)


class RangeTracker(torch.nn.Module):
    """Observed activation range of one quantizer: batch min/max in training (with an EMA kept in buffers),
    the EMA in eval. Units: the activation's own (real) units."""

    def __init__(self, momentum: float = 0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("lo", torch.zeros(()))
        self.register_buffer("hi", torch.zeros(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the (lo, hi) to use for ``x`` now, updating the running range in training mode."""
        if not self.training:
            if not bool(self.initialized):
                return x.min(), x.max()
            return self.lo, self.hi
        lo, hi = torch.aminmax(x.detach())
        # branch-free (no host sync, no graph break under torch.compile): the first batch sets the range,
        # later ones move the EMA; the same values as copy_ / lerp_
        init = self.initialized
        self.lo.copy_(torch.where(init, torch.lerp(self.lo, lo.to(self.lo.dtype), self.momentum), lo))
        self.hi.copy_(torch.where(init, torch.lerp(self.hi, hi.to(self.hi.dtype), self.momentum), hi))
        self.initialized.fill_(True)
        return lo, hi

    def scale(self, bits: int, signed: bool) -> torch.Tensor:
        """The eval-time scale for ``bits`` (what the integer model and the accelerator use)."""
        return minmax_scale(self.lo, self.hi, torch.tensor(float(bits)), signed)
