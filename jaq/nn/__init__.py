"""Software half of JAQ: quantizer, FBNet candidate ops, the supernet with CSQ, subnets and integer inference.

Public API (docs/supernet.md):
    SpaceConfig, preset                         search-space config (jaq.nn.space)
    quantize_int, fake_quant, int_range         Eq. 2 quantizer (jaq.nn.quant)
    Supernet, Candidates, BlockCandidates       the searchable network (jaq.nn.supernet)
    SubnetChoice, BlockChoice, SubNet, build_subnet, subnet_layers   derived subnets (jaq.nn.subnet)
    IntegerNet, IntLayer, export_integer, requantize, conv_int, pad_input   integer model (jaq.nn.integer)
"""

from jaq.nn.integer import IntegerNet, IntLayer, conv_int, export_integer, pad_input, requantize
from jaq.nn.quant import fake_quant, int_range, quantize_int
from jaq.nn.space import ALL_OPS, ALLOWED_BITS, CSQ_MODES, OP_SPECS, SpaceConfig, preset
from jaq.nn.subnet import BlockChoice, SubNet, SubnetChoice, build_subnet, subnet_layers
from jaq.nn.supernet import BlockCandidates, Candidates, Supernet, gumbel_softmax

__all__ = ["SpaceConfig", "preset", "ALL_OPS", "ALLOWED_BITS", "CSQ_MODES", "OP_SPECS", "quantize_int",
           "fake_quant", "int_range", "Supernet", "Candidates", "BlockCandidates", "gumbel_softmax",
           "SubnetChoice", "BlockChoice", "SubNet", "build_subnet", "subnet_layers", "IntegerNet", "IntLayer",
           "export_integer", "requantize", "conv_int", "pad_input"]
