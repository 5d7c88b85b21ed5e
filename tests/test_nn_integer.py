"""Short search on sklearn digits (tiny space) and the integer model of a retrained subnet vs fake-quant."""

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from jaq.nn.integer import conv_int, export_integer, pad_input, requantize
from jaq.nn.quant import quantize_int
from jaq.nn.space import preset
from jaq.nn.subnet import SubnetChoice, build_subnet
from jaq.nn.supernet import Supernet


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32).view(-1, 1, 8, 8)
    x = (x - x.mean()) / x.std()
    return x, torch.tensor(d.target)


def test_search_steps_reduce_loss(digits):
    """Alternating weight / arch steps (80% / 20% split, as the paper) on the tiny space lower the loss."""
    x, y = digits
    torch.manual_seed(0)
    sp = preset("tiny")
    net = Supernet(sp)
    wopt = torch.optim.Adam(net.weight_parameters(), 1e-2)
    aopt = torch.optim.Adam(net.arch_parameters(), 1e-2)
    xw, yw, xa, ya = x[:1200], y[:1200], x[1200:1500], y[1200:1500]
    xe, ye = x[1500:1628], y[1500:1628]

    def eval_loss():  # held-out batch, BN on batch statistics (running ones lag after a few steps)
        net.train()
        net.sampling = "mean"
        with torch.no_grad():
            loss = F.cross_entropy(net(xe), ye).item()
        net.sampling = "soft"
        return loss

    before = eval_loss()
    alpha0 = net.alpha.detach().clone()
    g = torch.Generator().manual_seed(0)
    for it in range(8):
        net.train()
        net.set_epoch(it / 4)
        i = torch.randint(0, len(xw), (32,), generator=g)
        wopt.zero_grad()
        F.cross_entropy(net(xw[i]), yw[i]).backward()
        wopt.step()
        j = torch.randint(0, len(xa), (16,), generator=g)
        aopt.zero_grad()
        F.cross_entropy(net(xa[j]), ya[j]).backward()
        aopt.step()
    after = eval_loss()
    assert after < 0.8 * before, (before, after)
    assert not torch.equal(net.alpha.detach(), alpha0)
    choice = net.derive()
    assert len(choice.blocks) == sp.num_blocks


@pytest.fixture(scope="module")
def trained(digits):
    x, y = digits
    torch.manual_seed(0)
    sp = preset("tiny")
    ch = SubnetChoice.from_dict([{"op": "k3_e3", "act_bits": 4, "wgt_bits": 4},
                                 {"op": "skip", "act_bits": 4, "wgt_bits": 4},
                                 {"op": "k5_e1_g2", "act_bits": 8, "wgt_bits": 2},
                                 {"op": "k3_e6", "act_bits": 2, "wgt_bits": 8},
                                 {"op": "skip", "act_bits": 4, "wgt_bits": 4}], sp)
    net = build_subnet(sp, ch)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(40):
        i = torch.randint(0, 1500, (64,), generator=g)
        opt.zero_grad()
        F.cross_entropy(net(x[i]), y[i]).backward()
        opt.step()
    net.eval()
    return net


def test_integer_model_matches_fake_quant(digits, trained):
    x, y = digits
    xe = x[1500:]
    with torch.no_grad():
        ref = trained(xe).double()
    inet = export_integer(trained)
    logits = inet(xe)
    agree = (ref.argmax(1) == logits.argmax(1)).float().mean().item()
    assert agree >= 0.97
    assert (ref - logits).abs().max().item() < 0.05 * ref.abs().max().item()
    assert (logits.argmax(1) == y[1500:]).float().mean().item() > 0.3  # it learned something


def test_integer_layers_exact_and_self_consistent(digits, trained):
    x, _ = digits
    inet = export_integer(trained)
    layers = trained.layers()
    assert [L.layer for L in inet.layers] == layers
    # exported weights are exactly the integers the fake-quant used
    w_int, s = quantize_int(trained.stem.weight, layers[0].wgt_bits, True)
    assert torch.equal(inet.layers[0].weight, w_int)
    assert torch.equal(trained.stem.quantized_weight(), w_int.float() * s)
    logits, rec = inet.run(x[:3], trace=True)
    for L, r in zip(inet.layers, rec):
        lay = L.layer
        assert r["input"].shape[-2:] == (lay.in_h, lay.in_w)
        assert r["acc"].shape[1:] == (lay.out_ch, lay.out_h, lay.out_w)
        assert r["acc"].dtype == torch.int64 and r["acc"].abs().max() < 2 ** 31
        lo, hi = (-(1 << (lay.act_bits - 1)), (1 << (lay.act_bits - 1)) - 1) if lay.act_signed \
            else (0, (1 << lay.act_bits) - 1)
        assert r["input"].min() >= lo and r["input"].max() <= hi
        # integer conv == a plain loop-free reference: unfold + integer matmul (int64)
        if lay.groups == 1:
            cols = F.unfold(r["input"].double(), lay.kernel, stride=lay.stride).round().long()
            ref = (L.weight.flatten(1) @ cols).view(r["acc"].shape)
            assert torch.equal(ref, r["acc"])
    assert torch.equal(logits, rec[-1]["output"].flatten(1))


def test_requantize_hand_values():
    acc = torch.tensor([[[[10, -7]], [[100, 3]]]])  # N=1, C=2, H=1, W=2
    out = requantize(acc, in_scale=0.5, wgt_scale=0.1, bn_mul=torch.tensor([1.0, 2.0]),
                     bn_add=torch.tensor([0.0, -1.0]), relu=True, out_scale=0.25, out_bits=4, out_signed=False)
    # ch0: 10*.05 = 0.5 -> 2;  -7*.05 = -.35 -> relu 0 ; ch1: 100*.05*2-1 = 9 -> 36 clips 15; 3*.05*2-1 = -.7 -> 0
    assert out.tolist() == [[[[2, 0]], [[15, 0]]]]
    res = torch.tensor([[[[4, -4]], [[0, 0]]]])
    out = requantize(acc, in_scale=0.5, wgt_scale=0.1, bn_mul=torch.ones(2), bn_add=torch.zeros(2), relu=False,
                     out_scale=0.25, out_bits=2, out_signed=True, residual=res, residual_scale=0.25)
    # ch0: 0.5 + 1 = 1.5 -> 6 clips 1; -0.35 - 1 = -1.35 -> -5.4 clips -2
    assert out[0, 0].tolist() == [[1, -2]]
    logits = requantize(acc, in_scale=1.0, wgt_scale=1.0, bn_mul=torch.ones(2), bn_add=torch.zeros(2),
                        relu=False)
    assert logits.dtype == torch.float64 and logits.flatten().tolist() == [10, -7, 100, 3]


def test_conv_int_overflow_and_padding():
    from jaq.hw.records import Layer
    lay = Layer(kind="depthwise", in_ch=2, out_ch=2, out_h=3, out_w=3, kernel=3, stride=2, groups=2)
    x = torch.ones(1, 2, 5, 5, dtype=torch.int64)
    xp = pad_input(x, lay)
    assert xp.shape == (1, 2, 7, 7) and xp[0, 0, 0].sum() == 0 and xp[0, 0, 1, 1:6].tolist() == [1] * 5
    acc = conv_int(xp, torch.ones(2, 1, 3, 3, dtype=torch.int64), 2, 2)
    assert acc.shape == (1, 2, 3, 3) and acc[0, 0, 1, 1] == 9 and acc[0, 0, 0, 0] == 4
    with pytest.raises(OverflowError):
        conv_int(torch.full((1, 1, 1, 1), 1 << 20), torch.full((1, 1, 1, 1), 1 << 12), 1, 1)
