"""Supernet: spaces and their validation, Gumbel schedule, CSQ selection, gradients, derivation, candidates()."""

import math

import pytest
import torch

from jaq.errors import JaqError
from jaq.hw.records import Layer
from jaq.nn.integer import pad_input
from jaq.nn.space import SpaceConfig, preset
from jaq.nn.subnet import SubnetChoice, build_subnet, subnet_layers
from jaq.nn.supernet import Supernet, gumbel_softmax


@pytest.fixture(scope="module")
def tiny():
    return preset("tiny")


def test_presets_shapes():
    for name, blocks, size, final in (("cifar", 22, 32, 4), ("imagenet", 22, 224, 7), ("tiny", 5, 8, 2)):
        sp = preset(name)
        assert sp.num_blocks == blocks and sp.input_size == size and sp.final_size == final
        assert len(sp.ops) == 9 and sp.bits == (2, 4, 8) and sp.gumbel.tau0 == 5.0
    assert preset("cifar").csq.k_percent == 3.0 and preset("cifar").head_channels == 1504


def test_from_dict_preset_override_and_roundtrip():
    sp = SpaceConfig.from_dict({"preset": "cifar", "num_classes": 100, "csq": {"k_percent": 5},
                                "bits": [4, 2], "ops": ["k3_e1", "skip"]})
    assert sp.num_classes == 100 and sp.csq.k_percent == 5 and sp.csq.mode == "csq" and sp.bits == (2, 4)
    assert SpaceConfig.from_dict(sp.to_dict()) == sp


@pytest.mark.parametrize("override,field", [
    ({"ops": ["k3_e1", "k7_e9"]}, "space.ops[1]"),
    ({"bits": [2, 3]}, "space.bits[1]"),
    ({"csq": {"k_percent": 0}}, "space.csq.k_percent"),
    ({"csq": {"k_percent": 101}}, "space.csq.k_percent"),
    ({"csq": {"mode": "sparse"}}, "space.csq.mode"),
    ({"stages": [{"channels": 15, "blocks": 1}]}, "space.stages[0].channels"),  # odd width with _g2 ops
    ({"stages": [{"channels": 16, "blocks": 1, "stride": 3}]}, "space.stages[0].stride"),
    ({"stages": []}, "space.stages"),
    ({"gumbel": {"tau0": 1.0, "tau_min": 2.0}}, "space.gumbel.tau_min"),
    ({"fixed_bits": {"act": 16}}, "space.fixed_bits.act"),
    ({"colour": 1}, "space.colour"),
    ({"stem": {"channels": 16, "width": 3}}, "space.stem.width"),
])
def test_bad_configs_name_the_field(override, field):
    with pytest.raises(JaqError) as e:
        SpaceConfig.from_dict({"preset": "tiny", **override})
    assert e.value.field == field, str(e.value)
    assert str(e.value).startswith(field)


def test_missing_and_unknown_preset():
    with pytest.raises(JaqError, match="space.input_size: missing"):
        SpaceConfig.from_dict({"in_channels": 3, "num_classes": 10, "stem": {"channels": 8},
                               "stages": [{"channels": 8, "blocks": 1}], "head_channels": 8})
    with pytest.raises(JaqError, match="space.preset"):
        SpaceConfig.from_dict({"preset": "mnist"})


def test_gumbel_schedule(tiny):
    g = preset("cifar").gumbel
    assert g.tau(0) == 5.0
    taus = [g.tau(e) for e in range(200)]
    assert all(a >= b for a, b in zip(taus, taus[1:]))
    assert taus[10] == pytest.approx(5.0 * 0.956 ** 10) and taus[-1] == g.tau_min
    net = Supernet(tiny)
    assert net.set_epoch(3) == pytest.approx(5.0 * 0.8 ** 3) and net.tau == net.set_epoch(3)


def test_gumbel_softmax_soft_and_hard():
    torch.manual_seed(0)
    logits = torch.tensor([[0.0, 2.0, -1.0], [1.0, 1.0, 1.0]], requires_grad=True)
    y, idx = gumbel_softmax(logits, 5.0)
    assert idx is None and torch.allclose(y.sum(-1), torch.ones(2))
    y, idx = gumbel_softmax(logits, 1.0, hard=True)
    assert set(y.detach().flatten().tolist()) <= {0.0, 1.0} and y.sum().item() == 2.0
    (y * torch.arange(3.0)).sum().backward()
    assert logits.grad.abs().sum() > 0
    y, idx = gumbel_softmax(logits.detach(), 1.0, hard=True, noise=False)
    assert idx.tolist() == [1, 0]


@pytest.mark.parametrize("name,batch,sampling", [("tiny", 4, "soft"), ("cifar", 2, "soft"),
                                                 ("imagenet", 1, "hard")])
def test_forward_shapes(name, batch, sampling):
    sp = preset(name)
    torch.manual_seed(0)
    net = Supernet(sp)
    net.sampling = sampling
    with torch.no_grad():
        y = net(torch.randn(batch, sp.in_channels, sp.input_size, sp.input_size))
    assert y.shape == (batch, sp.num_classes) and torch.isfinite(y).all()
    sub = build_subnet(sp, net.derive())
    with torch.no_grad():
        assert sub(torch.randn(batch, sp.in_channels, sp.input_size, sp.input_size)).shape == (batch, sp.num_classes)


@pytest.mark.parametrize("mode", ["csq", "full", "channel0", "hetero"])
def test_gradients_reach_alpha_beta_and_bn_scales(tiny, mode):
    torch.manual_seed(0)
    net = Supernet(SpaceConfig.from_dict({"preset": "tiny", "csq": {"mode": mode}}))
    with torch.no_grad():  # a trained state: at init a residual branch's last BN scale is 0 (the branch is the
        for m in net.modules():  # identity, test_residual_blocks_start_as_identity), so nothing before it has
            if getattr(m, "residual", False):  # a gradient yet
                m.bn3.weight.fill_(1.0)
    x = torch.randn(8, 1, 8, 8)
    torch.nn.functional.cross_entropy(net(x), torch.randint(0, 10, (8,))).backward()
    assert (net.alpha.grad.abs().sum(-1) > 0).all()  # every block
    assert (net.beta_act.grad.abs().sum(-1) > 0).any(-1).all() and (net.beta_wgt.grad.abs().sum(-1) > 0).any(-1).all()
    if mode != "hetero":  # soft bits: every op of every block gets act- and weight-bit gradients
        non_id = [i for i, o in enumerate(tiny.ops) if o != "skip"]
        assert (net.beta_wgt.grad[:, non_id].abs().sum(-1) > 0).all()
        assert (net.beta_act.grad[:, non_id].abs().sum(-1) > 0).all()
    op = net.blocks[1][0]
    for bn in (op.bn1, op.bn2, op.bn3, net.stem_bn):
        assert bn.weight.grad is not None and bn.weight.grad.abs().sum() > 0


def test_csq_selects_by_bn_importance_of_previous_block(tiny):
    torch.manual_seed(0)
    net = Supernet(tiny)  # K = 25%: block 1's input has 8 channels -> 2 selected
    with torch.no_grad():
        net.alpha[0] = torch.linspace(-1, 1, len(tiny.ops))
        gammas = []
        for i, op in enumerate(net.blocks[0]):
            g = torch.rand(8)
            if op.is_identity:
                g = net.stem_bn.weight.abs()  # identity passes the stem's importance through
            else:
                op.out_bn().weight.copy_(g * (1 if i % 2 else -1))  # sign must not matter: |gamma|
            gammas.append(g)
        net.stem_bn.weight.copy_(torch.rand(8))
        gammas = [net.stem_bn.weight.abs() if op.is_identity else g for op, g in zip(net.blocks[0], gammas)]
        p = torch.softmax(net.alpha[0], 0)
        big = sum(pi * gi for pi, gi in zip(p, gammas))
        net(torch.randn(2, 1, 8, 8))
    expect = sorted(torch.argsort(big, descending=True)[:2].tolist())
    assert net.last_omegas[1].tolist() == expect
    assert net.last_omegas[0].tolist() == sorted(torch.argsort(net.stem_bn.weight.abs(), descending=True)[:2].tolist())


def test_derive_deterministic_and_layers():
    sp = preset("cifar")
    net = Supernet(sp)
    ops, bits = sp.ops, sp.bits
    with torch.no_grad():
        for l in range(sp.num_blocks):
            i = (l * 5) % len(ops)
            net.alpha[l, i] = 1.0
            net.beta_act[l, i, l % 3] = 2.0
            net.beta_wgt[l, i, (l + 1) % 3] = 2.0
    ch = net.derive()
    assert ch == net.derive()
    for l, b in enumerate(ch.blocks):
        assert b.op == ops[(l * 5) % len(ops)] and b.act_bits == bits[l % 3] and b.wgt_bits == bits[(l + 1) % 3]
    assert SubnetChoice.from_dict(ch.to_dict(), sp) == ch
    layers = net.derive_layers()
    assert layers == build_subnet(sp, ch).layers() == subnet_layers(sp, ch)
    assert layers[0].name == "stem" and layers[0].kind == "conv" and layers[0].act_signed
    assert layers[-2].name == "head" and layers[-2].out_h == 4 and layers[-1].kind == "fc"
    assert all(isinstance(x, Layer) for x in layers)
    # resolutions: each layer's output size follows the stride chain; padded input extents are consistent
    sizes = {l: s for l, (_, _, _, s) in enumerate(sp.block_specs())}
    for lay in layers:
        if lay.name.startswith("b"):
            blk = int(lay.name[1:].split(".")[0])
            assert lay.act_bits == ch.blocks[blk].act_bits and lay.wgt_bits == ch.blocks[blk].wgt_bits
            if lay.name.endswith("expand"):
                assert lay.out_h == sizes[blk] and lay.kind == "pointwise"
            if lay.name.endswith(("dw", "project", "skip")):
                assert lay.out_h == math.ceil(sizes[blk] / lay.stride if lay.name.endswith(("dw", "skip"))
                                              else lay.out_h)
        x = torch.zeros(1, lay.in_ch, lay.out_h * lay.stride if lay.kind != "fc" else 1,
                        lay.out_h * lay.stride if lay.kind != "fc" else 1, dtype=torch.int64)
        assert pad_input(x, lay).shape[-2:] == (lay.in_h, lay.in_w)
    # ties: all-zero parameters choose the first op and the first bits
    first = Supernet(preset("tiny")).derive()
    assert all(b.op == "k3_e1" and b.act_bits == 2 and b.wgt_bits == 2 for b in first.blocks)


def test_subnet_signedness_and_grouped_kinds(tiny):
    ch = SubnetChoice.from_dict([{"op": "skip", "act_bits": 4, "wgt_bits": 4},  # identity (8 -> 8, s1)
                                 {"op": "k3_e1_g2", "act_bits": 4, "wgt_bits": 2},
                                 {"op": "skip", "act_bits": 8, "wgt_bits": 8},  # identity
                                 {"op": "skip", "act_bits": 2, "wgt_bits": 2},  # 1x1 conv (16 -> 24, s2)
                                 {"op": "k5_e6", "act_bits": 2, "wgt_bits": 8}], tiny)
    layers = build_subnet(tiny, ch).layers()
    names = [x.name for x in layers]
    assert names == ["stem", "b1.expand", "b1.dw", "b1.project", "b3.skip", "b4.expand", "b4.dw", "b4.project",
                     "head", "fc"]
    by = {x.name: x for x in layers}
    assert not by["b1.expand"].act_signed  # after the stem's ReLU (the identity skip passes it on)
    assert by["b1.expand"].groups == 2 and by["b1.project"].groups == 2 and by["b1.dw"].kind == "depthwise"
    assert by["b1.dw"].stride == 2 and by["b1.dw"].out_h == 4
    assert by["b3.skip"].act_signed and by["b3.skip"].stride == 2 and by["b3.skip"].kind == "pointwise"
    assert by["b4.dw"].kernel == 5 and by["b4.expand"].out_ch == 24 * 6 and not by["b4.dw"].act_signed
    assert by["head"].act_signed and not by["fc"].act_signed


def test_subnet_choice_errors(tiny):
    with pytest.raises(JaqError, match=r"subnet.blocks\[0\].op"):
        SubnetChoice.from_dict([{"op": "k9", "act_bits": 2, "wgt_bits": 2}] * 5, tiny)
    with pytest.raises(JaqError, match=r"subnet.blocks\[1\].wgt_bits"):
        SubnetChoice.from_dict([{"op": "skip", "act_bits": 2, "wgt_bits": 2},
                                {"op": "skip", "act_bits": 2, "wgt_bits": 3}] + [{"op": "skip", "act_bits": 2,
                                                                                  "wgt_bits": 2}] * 3, tiny)
    with pytest.raises(JaqError, match="subnet.blocks"):
        SubnetChoice.from_dict([{"op": "skip", "act_bits": 2, "wgt_bits": 2}] * 4, tiny)


def test_candidates_structure_and_expected_cost_gradient(tiny):
    net = Supernet(tiny)
    with torch.no_grad():
        net.alpha.normal_()
        net.beta_act.normal_()
        net.beta_wgt.normal_()
    c = net.candidates()
    assert c.bits == (2, 4, 8) and len(c.blocks) == tiny.num_blocks
    assert [x.name for x in c.stem] == ["stem"] and [x.name for x in c.head] == ["head", "fc"]
    b = c.blocks[1]
    assert b.op_names == tiny.ops and b.op_probs.shape == (9,) and b.act_bit_probs.shape == (9, 3)
    assert torch.allclose(b.op_probs.sum(), torch.tensor(1.0))
    assert [len(x) for x in b.layers] == [3] * 8 + [1]  # block 1 changes width: skip is a 1x1 conv
    assert c.blocks[0].layers[-1] == []  # block 0 (8 -> 8, stride 1): identity skip, no layer
    layers, w, blk, op = c.expected_layers()
    assert len(layers) == w.shape[0] == blk.shape[0] == op.shape[0]
    # per block, the weights of one template layer position over all (op, a, w) sum to 1 per op's layer count
    for bc in c.blocks:
        sel = blk == bc.index
        n_layers = torch.tensor([float(len(x)) for x in bc.layers])
        assert torch.allclose(w[sel].sum(), (bc.op_probs * n_layers).sum())
    # rows carry the bits of their combination, in the documented order
    r = next(i for i, x in enumerate(layers) if x.name == "b2.expand")
    assert [(layers[r + k * 3].act_bits, layers[r + k * 3].wgt_bits) for k in range(3)] == [(2, 2), (2, 4), (2, 8)]
    assert w[r + 3].item() == pytest.approx((c.blocks[2].op_probs[0] * c.blocks[2].act_bit_probs[0, 0] *
                                             c.blocks[2].wgt_bit_probs[0, 1]).item())
    cost = torch.tensor([float(x.macs * x.act_bits * x.wgt_bits) for x in layers])
    (w * cost).sum().backward()
    assert net.alpha.grad.abs().sum() > 0 and net.beta_act.grad.abs().sum() > 0 and net.beta_wgt.grad.abs().sum() > 0


def test_residual_blocks_start_as_identity():
    """Issue 17: the residual branch's last BN scale starts at 0, so every residual MBConv candidate is the
    identity at init (float and quantized). With gamma = 1 the 22-block CIFAR net did not train at lr 0.02."""
    from jaq.nn.ops import MBConvOp, make_op
    torch.manual_seed(0)
    for name in ("k3_e1", "k3_e3", "k5_e6", "k3_e1_g2"):
        op = make_op(name, 8, 8, 1, act_bits=(4, 8), wgt_bits=(4, 8))
        assert isinstance(op, MBConvOp) and op.residual
        assert torch.equal(op.bn3.weight, torch.zeros(8))
        x = torch.randn(4, 8, 6, 6)
        for mode in ("none", "full"):
            y = op(x, ab=torch.tensor([0.5, 0.5]), wb=torch.tensor([0.5, 0.5]), mode=mode)
            assert torch.allclose(y, x, atol=1e-6)
    down = make_op("k3_e3", 8, 16, 2)
    assert not down.residual and torch.equal(down.bn3.weight, torch.ones(16))  # no residual: BN scale 1


def test_all_k3e3_cifar_subnet_learns_at_search_lr():
    """Issue 17 regression: an all-k3_e3 22-block CIFAR supernet path (argmax, CSQ 4-bit) fits a fixed batch at
    the search's lr 0.02 (before the zero-init fix its loss rose above ln 10 at this lr)."""
    torch.manual_seed(0)
    sp = SpaceConfig.from_dict({"preset": "cifar", "bits": [4, 8], "stem": {"channels": 16, "stride": 2}})
    net = Supernet(sp)
    net.sampling = "argmax"
    with torch.no_grad():
        net.alpha[:, sp.ops.index("k3_e3")] = 5.0
    x, y = torch.randn(32, 3, 32, 32), torch.arange(32) % 10
    arch = {id(p) for p in net.arch_parameters()}
    opt = torch.optim.SGD([p for p in net.parameters() if id(p) not in arch], lr=0.02, momentum=0.9)
    net.train()
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.7 * losses[0], losses
