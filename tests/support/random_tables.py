"""Hypothesis strategy for hand-mutated flow tables: compiled tables with random edits.

:func:`mutated_flows` takes the compiled lines of a network (``switch -> lines``, the shape
:mod:`support.mutations` edits) and applies 1..n edits of the kinds in :data:`EDIT_KINDS`:
delete a flow, change a priority, an output port, a ``set_field`` value, a metadata tag or a
VLAN (written or matched), a ``goto_table``, a ``ct`` action (commit, zone, table, or a
conntrack ``nat``) or ``ct_state``/``ct_zone``
match, drop or add one action, add a copy of a flow with a wider match, or one of the named
mutations of :data:`support.mutations.MUTATIONS` where it applies. Every edit keeps the
tables parseable (an edit whose line does not parse is not made) and is described in
words, so a failing example says what was changed.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from hypothesis import strategies as st

from segctl.openflow.ofctl import Flow, FlowSyntaxError, UnsupportedFlowError, parse_flows
from segctl.topology.network import Network
from segctl.verifier.nat import NatModel
from support.mutations import MUTATIONS, Flows

__all__ = ["EDIT_KINDS", "Context", "mutated_flows", "parse_tables"]

#: Match tokens an edit may drop (never the protocol shorthands their prerequisites rest on).
WIDENABLE = re.compile(
    r"^(in_port|dl_src|dl_dst|nw_src|nw_dst|ipv6_src|ipv6_dst|metadata|vlan_tci|dl_vlan|ct_state|ct_zone|"
    r"tcp_dst|udp_dst|tcp_src|udp_src|icmp_type|arp_op|arp_spa|arp_tpa|arp_sha|arp_tha|nw_ttl|conj_id)="
)
CT_STATES = ["+trk", "-trk", "+new+trk", "+est+trk", "+est+rpl+trk", "+rel+trk", "+inv+trk", "-new+trk"]


def parse_tables(flows: Flows) -> dict[str, list[Flow]]:
    """Parsed tables of ``switch -> lines`` (line numbers as in a flow file)."""
    return {sw: parse_flows("\n".join(lines), source=sw) for sw, lines in flows.items()}


class Context:
    """Values an edit may write: the network's ports, MACs, IPs, VLANs, tags and zones."""

    def __init__(self, network: Network, flows: Flows) -> None:
        self.ports: dict[str, list[int]] = {sw.name: [] for sw in network.switches}
        for a, ap, b, bp in network.links:
            self.ports[a].append(ap)
            self.ports[b].append(bp)
        for ep in network.endpoints:
            self.ports[ep.switch].append(ep.port)
        self.macs = sorted({ep.mac for ep in network.endpoints} | {t.gateway_mac for t in network.tenants})
        self.ips = sorted({str(ep.ip) for ep in network.endpoints}) or ["10.0.0.1"]
        self.vlans = sorted({s.vlan for s in network.segments}) or [100]
        text = "\n".join(line for lines in flows.values() for line in lines)
        self.metadata = sorted(set(re.findall(r"write_metadata:(0x[0-9a-f]+)", text))) or ["0x1"]
        self.zones = sorted({t.id for t in network.tenants}) or [1]
        self.tables = {
            sw: sorted({int(t) for t in re.findall(r"table=(\d+)", "\n".join(ls))})
            for sw, ls in flows.items()
        }


Edit = Callable[[st.DrawFn, Context, str, str], str | None]


def _priority(draw: st.DrawFn, ctx: Context, sw: str, line: str) -> str | None:
    p = int(re.search(r"priority=(\d+)", line).group(1))  # type: ignore[union-attr]
    new = draw(st.sampled_from([p + 1, max(p - 1, 0), 0, 65535, p + 100]))
    return re.sub(r"priority=\d+", f"priority={new}", line, count=1)


def _sub_one(draw: st.DrawFn, line: str, pattern: str, make: Callable[[re.Match[str]], str]) -> str | None:
    """``line`` with one drawn occurrence of ``pattern`` (in the actions) replaced by ``make(m)``."""
    head, _, actions = line.partition("actions=")
    hits = list(re.finditer(pattern, actions))
    if not hits:
        return None
    m = draw(st.sampled_from(hits))
    return f"{head}actions={actions[: m.start()]}{make(m)}{actions[m.end() :]}"


def _output(draw: st.DrawFn, ctx: Context, sw: str, line: str) -> str | None:
    choices = [f"output:{p}" for p in ctx.ports[sw]] + ["IN_PORT", "output:99", "LOCAL", "CONTROLLER:65535"]
    return _sub_one(draw, line, r"output:\d+|IN_PORT", lambda m: draw(st.sampled_from(choices)))


def _set_field(draw: st.DrawFn, ctx: Context, sw: str, line: str) -> str | None:
    def value(m: re.Match[str]) -> str:
        field = m.group(2)
        if field in ("eth_src", "eth_dst", "arp_sha", "arp_tha"):
            new = draw(st.sampled_from(ctx.macs))
        elif field in ("arp_spa", "arp_tpa", "ip_src", "ip_dst", "nw_src", "nw_dst"):
            new = draw(st.sampled_from(ctx.ips))
        elif field == "vlan_vid":
            new = str(0x1000 | draw(st.sampled_from([*ctx.vlans, 7])))
        elif field == "arp_op":
            new = draw(st.sampled_from(["1", "2"]))
        else:
            new = m.group(1)
        return f"set_field:{new}->{field}"

    return _sub_one(draw, line, r"set_field:([^,>]+)->(\w+)", value)


def _tag(draw: st.DrawFn, ctx: Context, sw: str, line: str) -> str | None:
    """A written or matched metadata tag or VLAN changes."""
    head, _, actions = line.partition("actions=")
    options = []
    if "write_metadata:" in actions:
        options.append("write")
    if re.search(r"(^|,)metadata=", head):
        options.append("metadata")
    if "vlan_tci=0x1" in head:
        options.append("vlan")
    if not options:
        return None
    kind = draw(st.sampled_from(options))
    if kind == "write":
        new = draw(st.sampled_from(ctx.metadata))
        written = re.sub(r"write_metadata:0x[0-9a-f]+", f"write_metadata:{new}", actions, count=1)
        return f"{head}actions={written}"
    if kind == "metadata":
        new = draw(st.sampled_from(ctx.metadata))
        return (
            re.sub(r"(^|,)metadata=0x[0-9a-f]+", rf"\g<1>metadata={new}", head, count=1)
            + "actions="
            + actions
        )
    vid = draw(st.sampled_from([*ctx.vlans, 7]))
    return (
        re.sub(r"vlan_tci=0x[0-9a-f]+", f"vlan_tci={0x1000 | vid:#06x}", head, count=1) + "actions=" + actions
    )


def _goto(draw: st.DrawFn, ctx: Context, sw: str, line: str) -> str | None:
    table = int(re.match(r"table=(\d+)", line).group(1))  # type: ignore[union-attr]
    later = [t for t in ctx.tables[sw] if t > table]
    if not later:
        return None
    return _sub_one(draw, line, r"goto_table:\d+", lambda m: f"goto_table:{draw(st.sampled_from(later))}")


def _ct(draw: st.DrawFn, ctx: Context, sw: str, line: str) -> str | None:
    head, _, actions = line.partition("actions=")
    options = (["action"] if "ct(" in actions else []) + (["state"] if "ct_state=" in head else [])
    options += ["zone"] if "ct_zone=" in head else []
    if not options:
        return None
    kind = draw(st.sampled_from(options))
    if kind == "state":
        return (
            re.sub(r"ct_state=[-+a-z]+", f"ct_state={draw(st.sampled_from(CT_STATES))}", head)
            + "actions="
            + actions
        )
    if kind == "zone":
        return (
            re.sub(r"ct_zone=\d+", f"ct_zone={draw(st.sampled_from(ctx.zones))}", head) + "actions=" + actions
        )

    def change(m: re.Match[str]) -> str:
        opts = [o for o in m.group(1).split(",") if o]
        what = draw(st.sampled_from(["commit", "zone", "table", "nat"]))
        if what == "nat":  # conntrack NAT (kept only where OVS takes it: ip match, table=)
            if "commit" in opts and draw(st.booleans()):
                side = draw(st.sampled_from(["src", "dst"]))
                opts.append(f"nat({side}={draw(st.sampled_from(ctx.ips))})")
            else:
                opts.append("nat")
        elif what == "commit":
            opts = [o for o in opts if o != "commit"] if "commit" in opts else ["commit", *opts]
        elif what == "zone":
            opts = [o for o in opts if not o.startswith("zone=")] + [
                f"zone={draw(st.sampled_from(ctx.zones))}"
            ]
        else:
            table = int(re.match(r"table=(\d+)", line).group(1))  # type: ignore[union-attr]
            later = [t for t in ctx.tables[sw] if t > table]
            opts = [o for o in opts if not o.startswith("table=")]
            if later and draw(st.booleans()):
                opts.append(f"table={draw(st.sampled_from(later))}")
        return f"ct({','.join(opts)})"

    return _sub_one(draw, line, r"ct\(([^)]*)\)", change)


def _drop_action(draw: st.DrawFn, ctx: Context, sw: str, line: str) -> str | None:
    head, _, actions = line.partition("actions=")
    parts = re.split(r",(?![^(]*\))", actions)
    if len(parts) < 2:
        return None
    i = draw(st.integers(0, len(parts) - 1))
    return f"{head}actions={','.join(parts[:i] + parts[i + 1 :])}"


def _add_action(draw: st.DrawFn, ctx: Context, sw: str, line: str) -> str | None:
    head, _, actions = line.partition("actions=")
    parts = [] if actions == "drop" else re.split(r",(?![^(]*\))", actions)
    new = draw(
        st.sampled_from(
            [
                "dec_ttl",
                "pop_vlan",
                f"mod_vlan_vid:{draw(st.sampled_from(ctx.vlans))}",
                f"set_field:{draw(st.sampled_from(ctx.macs))}->eth_dst",
                f"write_metadata:{draw(st.sampled_from(ctx.metadata))}/0xffffffff",
                "set_field:5->reg2",
                "CONTROLLER:65535",
                f"output:{draw(st.sampled_from(ctx.ports[sw] or [99]))}",
            ]
        )
    )
    at = draw(st.integers(0, len(parts)))
    return f"{head}actions={','.join([*parts[:at], new, *parts[at:]])}"


#: Edits of one existing line (None: the edit does not apply to it).
LINE_EDITS: dict[str, Edit] = {
    "priority": _priority,
    "output": _output,
    "set_field": _set_field,
    "tag": _tag,
    "goto": _goto,
    "ct": _ct,
    "drop-action": _drop_action,
    "add-action": _add_action,
}
#: Every kind of edit :func:`mutated_flows` makes.
EDIT_KINDS = ("delete", "widen", "named", *LINE_EDITS)


def _widened(draw: st.DrawFn, line: str) -> str | None:
    head, _, actions = line.partition("actions=")
    tokens = head.rstrip(",").split(",")
    droppable = [i for i, tok in enumerate(tokens) if WIDENABLE.match(tok)]
    if not droppable:
        return None
    i = draw(st.sampled_from(droppable))
    rest = tokens[:i] + tokens[i + 1 :]
    bump = draw(st.sampled_from([0, 1, 100]))
    out = ",".join(rest) + ",actions=" + actions
    if bump:
        p = int(re.search(r"priority=(\d+)", out).group(1))  # type: ignore[union-attr]
        out = re.sub(r"priority=\d+", f"priority={min(p + bump, 65535)}", out, count=1)
    return out


def _parses(line: str) -> bool:
    """The line parses and the verifier models it (``nat`` needs ``table=``)."""
    try:
        NatModel.of_switch("s", parse_flows(line))
    except (FlowSyntaxError, UnsupportedFlowError):
        return False
    return True


def _actions(line: str) -> str:
    return line.partition("actions=")[2]


#: Which lines an edit of each kind can change (a cheap test; the edit may still find nothing).
APPLIES: dict[str, Callable[[str], bool]] = {
    "delete": lambda s: True,
    "priority": lambda s: True,
    "widen": lambda s: any(WIDENABLE.match(t) for t in s.partition("actions=")[0].split(",")),
    "output": lambda s: bool(re.search(r"output:|IN_PORT", _actions(s))),
    "set_field": lambda s: "set_field:" in _actions(s),
    "tag": lambda s: bool(re.search(r"write_metadata:|(^|,)metadata=|vlan_tci=0x1", s)),
    "goto": lambda s: "goto_table:" in _actions(s),
    "ct": lambda s: "ct(" in _actions(s) or "ct_state=" in s or "ct_zone=" in s,
    "drop-action": lambda s: len(re.split(r",(?![^(]*\))", _actions(s))) > 1,
    "add-action": lambda s: True,
}


def _one_edit(draw: st.DrawFn, ctx: Context, flows: Flows, named: bool) -> str | None:
    kind = draw(st.sampled_from([k for k in EDIT_KINDS if named or k != "named"]))
    if kind == "named":
        mutate, _prop = draw(st.sampled_from(MUTATIONS))
        trial = {sw: list(ls) for sw, ls in flows.items()}
        try:
            mutate(trial)
        except AssertionError:  # an earlier edit removed what it changes
            return None
        flows.update(trial)
        return f"mutation {mutate.__name__}"
    places = [(sw, i) for sw in sorted(flows) for i, s in enumerate(flows[sw]) if s.startswith("table=")]
    places = [(sw, i) for sw, i in places if APPLIES[kind](flows[sw][i])]
    if not places:
        return None
    sw, i = draw(st.sampled_from(places))
    lines = flows[sw]
    old = lines[i]
    if kind == "delete":
        del lines[i]
        return f"{sw}: delete line {i + 1}: {old}"
    if kind == "widen":
        new = _widened(draw, old)
        if new is None or not _parses(new):
            return None
        at = draw(st.integers(0, len(lines)))
        lines.insert(at, new)
        return f"{sw}: insert at line {at + 1} a wider copy of {old}: {new}"
    new = LINE_EDITS[kind](draw, ctx, sw, old)
    if new is None or new == old or not _parses(new):
        return None
    lines[i] = new
    return f"{sw}: line {i + 1} ({kind}): {old}  ->  {new}"


@st.composite
def mutated_flows(
    draw: st.DrawFn, network: Network, flows: Flows, *, max_edits: int = 3, named: bool = False
) -> tuple[Flows, list[str]]:
    """``flows`` (compiled lines of ``network``, left unchanged) after 1..``max_edits`` random
    edits, and what each edit did. ``named``: also the leaf-spine mutations of
    :mod:`support.mutations` (they name leaf-spine's switches and addresses)."""
    ctx = Context(network, flows)
    out = {sw: list(ls) for sw, ls in flows.items()}
    done: list[str] = []
    wanted = draw(st.integers(1, max_edits))
    for _ in range(4 * wanted):  # an edit that finds nothing to change is drawn again
        what = _one_edit(draw, ctx, out, named)
        if what is not None:
            done.append(what)
            if len(done) == wanted:
                break
    return out, done
