"""A derived, fixed architecture: the choice record, the retrainable quantized network, and its Layer list.

* :class:`SubnetChoice`: per searchable block the op name and its activation / weight bits (JSON round-trip).
* :func:`build_subnet` -> :class:`SubNet`: a fixed-architecture, fixed-bit fake-quant network (every channel
  quantized, STE) for retraining; ``SubNet.layers()`` lists every conv/fc layer the accelerator runs.
* :func:`subnet_layers`: the same Layer list without allocating weights.

Semantics of the deployed network (shared with the integer model, jaq.nn.integer): identity ``skip`` blocks
vanish; each block's input is quantized once by its first conv and that quantized tensor is also what the
residual adds (the accelerator only ever holds integers); activation signedness follows the actual producer:
the stem and MBConv-internal tensors are post-ReLU (unsigned), MBConv/skip-conv block outputs are signed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from jaq.errors import JaqError
from jaq.hw.records import Layer
from jaq.nn.ops import QConv2d, make_op
from jaq.nn.space import ALLOWED_BITS, SKIP, SpaceConfig, conv_out_size


@dataclass(frozen=True)
class BlockChoice:
    """One searchable block of a subnet: op name, activation bits, weight bits (bits unused by identity skip)."""

    op: str
    act_bits: int
    wgt_bits: int

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "act_bits": self.act_bits, "wgt_bits": self.wgt_bits}


@dataclass(frozen=True)
class SubnetChoice:
    """The architecture a search derives: one :class:`BlockChoice` per searchable block, in order."""

    blocks: tuple[BlockChoice, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"blocks": [b.to_dict() for b in self.blocks]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | Sequence, space: SpaceConfig | None = None,
                  where: str = "subnet.") -> "SubnetChoice":
        """Accept ``{"blocks": [...]}`` or the bare list; validated against ``space`` when given."""
        items = d.get("blocks") if isinstance(d, Mapping) else d
        if not isinstance(items, (list, tuple)):
            raise JaqError("expected a list of {op, act_bits, wgt_bits}", f"{where}blocks")
        blocks = []
        for i, b in enumerate(items):
            w = f"{where}blocks[{i}]."
            if not isinstance(b, Mapping):
                raise JaqError("expected a mapping {op, act_bits, wgt_bits}", f"{where}blocks[{i}]")
            unknown = sorted(set(b) - {"op", "act_bits", "wgt_bits"})
            if unknown:
                raise JaqError(f"unknown field(s) {', '.join(unknown)}", f"{w}{unknown[0]}")
            for k in ("op", "act_bits", "wgt_bits"):
                if k not in b:
                    raise JaqError("missing (required)", f"{w}{k}")
            ops = space.ops if space is not None else None
            if ops is not None and b["op"] not in ops:
                raise JaqError(f"op {b['op']!r} not in the space's ops ({', '.join(ops)})", f"{w}op")
            for k in ("act_bits", "wgt_bits"):
                if isinstance(b[k], bool) or b[k] not in ALLOWED_BITS:
                    raise JaqError(f"{b[k]!r} not supported; bits must be one of 2, 4, 8", f"{w}{k}")
            blocks.append(BlockChoice(str(b["op"]), int(b["act_bits"]), int(b["wgt_bits"])))
        if space is not None and len(blocks) != space.num_blocks:
            raise JaqError(f"{len(blocks)} blocks given, the space has {space.num_blocks}", f"{where}blocks")
        return cls(tuple(blocks))


class SubNet(nn.Module):
    """Fixed-architecture fake-quant network for retraining (batch x C x H x W -> batch x num_classes logits).

    Modules: ``stem`` (QConv2d) + ``stem_bn``; ``blocks`` (ModuleList, identity skips kept as no-ops so that
    indices match the choice); ``head`` (1x1 QConv2d) + ``head_bn``; global average pool; ``fc`` (QConv2d 1x1
    with bias). Every conv quantizes all channels of its input at its fixed bits, weights per tensor.
    """

    def __init__(self, space: SpaceConfig, choice: SubnetChoice):
        super().__init__()
        if len(choice.blocks) != space.num_blocks:
            raise JaqError(f"{len(choice.blocks)} blocks given, the space has {space.num_blocks}", "subnet.blocks")
        self.space, self.choice = space, choice
        fb = space.fixed_bits
        am, bm = space.act_momentum, space.bn_momentum
        self.stem = QConv2d(space.in_channels, space.stem.channels, space.stem.kernel, space.stem.stride,
                            act_bits=(fb.act,), wgt_bits=(fb.wgt,), act_signed=True, act_momentum=am)
        self.stem_bn = nn.BatchNorm2d(space.stem.channels, momentum=bm)
        signed = False  # stem output is post-ReLU
        self.blocks = nn.ModuleList()
        for (cin, cout, stride, _), bc in zip(space.block_specs(), choice.blocks):
            op = make_op(bc.op, cin, cout, stride, act_bits=(bc.act_bits,), wgt_bits=(bc.wgt_bits,),
                         in_signed=signed, bn_momentum=bm, act_momentum=am)
            if not op.is_identity:
                signed = True  # linear projection (+ residual)
            self.blocks.append(op)
        last_c = space.stages[-1].channels
        self.head = QConv2d(last_c, space.head_channels, 1, 1, act_bits=(fb.act,), wgt_bits=(fb.wgt,),
                            act_signed=signed, act_momentum=am)
        self.head_bn = nn.BatchNorm2d(space.head_channels, momentum=bm)
        self.fc = QConv2d(space.head_channels, space.num_classes, 1, 1, act_bits=(fb.act,), wgt_bits=(fb.wgt,),
                          act_signed=False, bias=True, act_momentum=am)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_bn(self.stem(x)))
        for op in self.blocks:
            if not op.is_identity:
                x = op(x, mode="full", quant_residual=True)
        x = F.relu(self.head_bn(self.head(x)))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(x).flatten(1)

    def layers(self) -> list[Layer]:
        """Every conv/fc layer in execution order with shapes, bits and signedness (jaq.hw.Layer).

        ``out_bits``/``out_signed`` are the consumer's (the next layer's) activation bits: the accelerator's
        output unit finishes the layer on chip (docs/execution-model.md section 7): a residual block's last conv
        adds the block input (``res_bits``/``res_signed``: its bits as stored), the head pools (``pool``), the
        classifier writes 32-bit logits."""
        sp = self.space
        fb = sp.fixed_bits
        size = conv_out_size(sp.input_size, sp.stem.kernel, sp.stem.stride)
        out = [self.stem.layer(size, name="stem", act_bits=fb.act, wgt_bits=fb.wgt)]
        wide = set()  # layers whose outputs stay 32-bit (the classifier's logits)
        for i, ((_, _, _, in_size), op, bc) in enumerate(zip(sp.block_specs(), self.blocks, self.choice.blocks)):
            first = len(out)
            out += op.layers(in_size, bc.act_bits, bc.wgt_bits, prefix=f"b{i}.")
            if getattr(op, "residual", False) and len(out) > first:  # adds the block input as its first conv reads it
                out[-1] = replace(out[-1], res_bits=out[first].act_bits, res_signed=out[first].act_signed)
        out.append(replace(self.head.layer(sp.final_size, name="head", act_bits=fb.act, wgt_bits=fb.wgt), pool=True))
        out.append(self.fc.layer(1, name="fc", act_bits=fb.act, wgt_bits=fb.wgt, fc=True))
        wide.add(len(out) - 1)
        return [l if j in wide else replace(l, out_bits=out[j + 1].act_bits, out_signed=out[j + 1].act_signed)
                for j, l in enumerate(out)]


def build_subnet(space: SpaceConfig, choice: SubnetChoice | Mapping | Sequence) -> SubNet:
    """The standalone fixed-architecture network for ``choice`` (a SubnetChoice or its dict form)."""
    if not isinstance(choice, SubnetChoice):
        choice = SubnetChoice.from_dict(choice, space)
    return SubNet(space, choice)


def subnet_layers(space: SpaceConfig, choice: SubnetChoice) -> list[Layer]:
    """``build_subnet(space, choice).layers()`` without allocating weights (modules built on the meta device)."""
    with torch.device("meta"):
        net = SubNet(space, choice)
    return net.layers()


__all__ = ["BlockChoice", "SubnetChoice", "SubNet", "build_subnet", "subnet_layers", "SKIP"]
