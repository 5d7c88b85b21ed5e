"""Build and write ``accel.json`` (DESIGN.md contract 2) from a finished search, and update it after retraining.

The document is an :class:`jaq.accel_json.AccelSpec`, validated (dumped and re-parsed) before it is written
atomically, so a file this module writes always loads back with ``jaq.accel_json.load_spec``.
"""

from __future__ import annotations

from pathlib import Path


def build_accel_doc(cfg: dict, space, net, subnet, acc, choices, *, provenance: dict,
                    accuracy: dict | None = None, objective_weights=None, config_path: str | None = None):
    """The :class:`jaq.accel_json.AccelSpec` of a finished search: every layer of the derived subnet with its
    bits, op, block, role, BatchTile tiling and predicted cost; the accelerator; totals (incl. EDAP);
    provenance (config, seed, code version, the resolved config and search settings under ``extra``)."""
    from jaq import accel_json as aj
    from jaq.search import model_api as api
    choice = api.choice_dict(net)
    ops = [b["op"] for b in choice["blocks"]]
    entries = []
    for l, c in zip(subnet, choices):
        block = role = op = None
        if l.name.startswith("b") and "." in l.name:
            head, role = l.name.split(".", 1)
            if head[1:].isdigit():
                block = int(head[1:])
                op = ops[block]
        else:
            role = l.name or None
        entries.append(aj.LayerEntry(layer=l, op=op, block=block, role=role, tiling=c.tiling,
                                     predicted=aj.Predicted("native", c.cost)))
    prov = aj.Provenance.now(config=config_path, seed=cfg["seed"], command=provenance.pop("command", None),
                             **provenance)
    prov.code_version = provenance.get("code_version", prov.code_version)
    with_layers = {e.block for e in entries if e.block is not None}
    label = ",".join(f"{b['op']}/a{b['act_bits']}w{b['wgt_bits']}" if i in with_layers else f"{b['op']}(identity)"
                     for i, b in enumerate(choice["blocks"]))
    net_rec = aj.Network(layers=entries, input_shape=(space.in_channels, space.input_size, space.input_size),
                         name=f"{space.name}:{label}",
                         dataset=cfg["data"]["dataset"])
    return aj.AccelSpec(network=net_rec, accelerator=acc, mode="native", provenance=prov,
                        objective_weights=tuple(objective_weights) if objective_weights else None,
                        totals=aj.Totals.from_costs([c.cost for c in choices], "native"),
                        accuracy=dict(accuracy or {}))


def write_accel(path: str | Path, spec) -> None:
    """Write accel.json atomically through jaq.accel_json (validated: re-parsed before writing)."""
    from jaq import accel_json as aj
    d = aj.dump(spec)
    aj.parse_spec(d, path)  # what we write must load back
    aj.save(spec, path)


def read_accel(path: str | Path):
    from jaq import accel_json as aj
    return aj.load_spec(path)
