"""The search's view of the supernet (jaq.nn): one place that knows the network package's API.

Everything the co-search needs from the network side goes through these functions: building the space and the
supernet, the architecture parameters, the temperature, the candidate layers with their differentiable
probabilities (for the expected hardware cost), the derived subnet's layers and choice, and histories.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from jaq.errors import JaqError
from jaq.io import atomic_write_json
from jaq.search.hwcost import CandidateRows


def make_space(space_cfg: str | Mapping, data=None):
    """SpaceConfig from a preset name or mapping; classes / channels / input size default to the data's."""
    from jaq.nn.space import SpaceConfig
    d: dict[str, Any] = {"preset": space_cfg} if isinstance(space_cfg, str) else dict(space_cfg)
    if data is not None:
        c, h, _ = data.in_shape
        d.setdefault("num_classes", data.num_classes)
        d.setdefault("in_channels", c)
        d.setdefault("input_size", h)
    space = SpaceConfig.from_dict(d)
    if data is not None:
        c, h, _ = data.in_shape
        if space.in_channels != c:
            raise JaqError(f"{space.in_channels} but the data set has {c} channels", "space.in_channels")
        if space.input_size != h:
            raise JaqError(f"{space.input_size} but the data set's images are {h}x{h} (set data.image_size)",
                           "space.input_size")
        if space.num_classes != data.num_classes:
            raise JaqError(f"{space.num_classes} but the data set has {data.num_classes} classes",
                           "space.num_classes")
    return space


def make_supernet(space):
    from jaq.nn.supernet import Supernet
    return Supernet(space)


def arch_parameters(net) -> list[torch.nn.Parameter]:
    return list(net.arch_parameters())


def set_tau(net, epoch: float) -> float:
    """Set the supernet's Gumbel temperature for ``epoch`` (space schedule); returns tau."""
    return float(net.set_epoch(epoch))


def candidate_rows(net) -> CandidateRows:
    """Flatten ``net.candidates()`` into rows: one per candidate layer, with op / act-bit / wgt-bit probs.

    Probabilities are the plain softmax of alpha / beta (tau = 1, no noise): the expectation is over the
    distribution the search is learning. Fixed layers (stem, head, fc) have probability 1 at their fixed bits.
    """
    c = net.candidates(1.0)
    bits = tuple(c.bits)
    ref = c.blocks[0].op_probs if c.blocks else torch.ones(1)
    layers, op_p, act_p, wgt_p = [], [], [], []

    def onehot(b):
        if b not in bits:
            raise JaqError(f"fixed bits {b} not among the space's bits {bits}", "space.fixed_bits")
        return torch.nn.functional.one_hot(torch.tensor(bits.index(b)), len(bits)).to(ref.dtype).to(ref.device)

    one = torch.ones((), dtype=ref.dtype, device=ref.device)
    for l in list(c.stem) + list(c.head):
        layers.append(l)
        op_p.append(one)
        act_p.append(onehot(l.act_bits))
        wgt_p.append(onehot(l.wgt_bits))
    for blk in c.blocks:
        for op_i, templ in enumerate(blk.layers):
            for l in templ:
                layers.append(l)
                op_p.append(blk.op_probs[op_i])
                act_p.append(blk.act_bit_probs[op_i])
                wgt_p.append(blk.wgt_bit_probs[op_i])
    return CandidateRows(layers, torch.stack(op_p), torch.stack(act_p), torch.stack(wgt_p), bits)


def derive_layers(net) -> list:
    return list(net.derive_layers())


def derive(net):
    return net.derive()


def choice_dict(net) -> dict:
    c = net.derive()
    return c.to_dict() if hasattr(c, "to_dict") else dict(c)


@torch.no_grad()
def alpha_probs(net) -> list[list[float]]:
    """Per searchable block: softmax(alpha) over its ops (no noise)."""
    return torch.softmax(net.alpha.detach().float(), -1).tolist()


@torch.no_grad()
def beta_probs(net) -> list[dict]:
    """Per searchable block: softmax(beta) over bits of the block's leading op, ``{"act": [...], "wgt": [...]}``."""
    out = []
    for a, ba, bw in zip(net.alpha.detach(), net.beta_act.detach(), net.beta_wgt.detach()):
        i = int(torch.argmax(a))
        out.append({"act": torch.softmax(ba[i].float(), -1).tolist(),
                    "wgt": torch.softmax(bw[i].float(), -1).tolist(), "bits": list(net.space.bits)})
    return out


def save_choice(run: Path, net, space) -> None:
    """RUN/subnet.json: the derived choice plus the space it belongs to (what `jaq retrain` rebuilds)."""
    atomic_write_json(Path(run) / "subnet.json", {"space": space.to_dict(), "choice": choice_dict(net)})
