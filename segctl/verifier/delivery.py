"""Properties 3 and 5 on an engine's views: what must arrive does (allowed-delivered, the
granted connections and their replies) and nothing loops or is lost on the way (loop-free).
They share :mod:`segctl.verifier.checks`' inputs and violation types, and its way of working
per destination with tagged relations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from segctl.verifier.checks import EndpointKey, Inputs, Pair, Target, Violation
from segctl.verifier.headerspace import BDD
from segctl.verifier.observe import ReplyRequest, requests_union
from segctl.verifier.symbolic import LOOP, TRUNCATED

__all__ = ["allowed_delivered", "loop_free", "reply_requests"]


# ---------------------------------------------------------------------------- 3. allowed-delivered


def _pair_text(p: Pair) -> str:
    return "; ".join(g.describe() for g in p.grants)


def allowed_delivered(inp: Inputs) -> tuple[list[Violation], list[Violation], Mapping[str, int]]:
    """Property 3 (every granted pair's forward space and replies delivered) and property 5's
    black holes of the same spaces: (allowed-delivered, black holes, counts), each in pair
    order (forward before reply)."""
    net = inp.network
    delivered_v: dict[tuple[int, int], Violation] = {}
    holes_v: dict[tuple[int, int], Violation] = {}
    index = {(p.src.key, p.dst.key): p.index for p in inp.pairs}
    by_index = {p.index: p for p in inp.pairs}
    for dst in net.endpoints:
        pairs = inp.pairs_to(dst)
        if not pairs:
            continue
        wanted = inp.forward_tagged(dst)
        missing = wanted & ~inp.delivered(inp.new, dst)
        for src in inp.endpoints_of(missing):
            p = by_index[index[(src.key, dst.key)]]
            message = (
                f"granted traffic {src.qualified} -> {dst.qualified} ({_pair_text(p)}) is not all delivered"
            )
            delivered_v[(index[(src.key, dst.key)], 0)] = Violation(
                "allowed-delivered", message, (src.switch, src.port), src.qualified, dst.qualified, "new",
                inp.untag(missing, src), Target("missing", dst.qualified),
            )  # fmt: skip
        for disposition, ended in inp.new.sorted_holes():
            lost = ended & wanted
            for src in inp.endpoints_of(lost):
                key = (index[(src.key, dst.key)], 0)
                if key in holes_v:
                    continue
                message = f"allowed traffic {src.qualified} -> {dst.qualified} ends {disposition}"
                holes_v[key] = Violation(
                    "loop-free", message, (src.switch, src.port), src.qualified, dst.qualified, "new",
                    inp.untag(lost, src), Target("hole", disposition=disposition),
                )  # fmt: skip
    _reply_checks(inp, index, delivered_v, holes_v)
    counts = {"granted pairs": len(inp.pairs), "stateful reply spaces": sum(map(len, inp.request_pairs))}
    return (
        [replace(delivered_v[k], order=k) for k in sorted(delivered_v)],
        [replace(holes_v[k], order=(1, *k)) for k in sorted(holes_v)],
        counts,
    )


def _reply_checks(
    inp: Inputs,
    index: Mapping[tuple[EndpointKey, EndpointKey], int],
    delivered_v: dict[tuple[int, int], Violation],
    holes_v: dict[tuple[int, int], Violation],
) -> None:
    """The replies of run E: every request's packets delivered each to its pair's source (the
    endpoint its destination address names, among the request's pairs), none lost."""
    hs, sp, net = inp.hs, inp.spaces, inp.network
    replies = inp.replies
    if replies is None or not inp.requests:
        return
    injected = requests_union(hs, list(enumerate(inp.requests)))
    receivers: dict[EndpointKey, list[int]] = {}
    for r, pairs in enumerate(inp.request_pairs):
        for p in pairs:
            receivers.setdefault(p.src.key, []).append(r)
    good = hs.union(
        replies.delivered[e.qualified] & sp.to_address(e, True) & hs.tag_set(receivers[e.key])
        for e in net.endpoints
        if e.key in receivers and e.qualified in replies.delivered
    )
    missing = injected & ~good

    def each(space: BDD) -> list[tuple[Pair, BDD, int]]:
        out = []
        for r in hs.tags(space):
            mine = hs.untag(space, r)
            for p in inp.request_pairs[r]:
                part = mine & sp.to_address(p.src, True)
                if not hs.is_empty(part):
                    out.append((p, part, r))
        return out

    for p, part, r in each(missing):
        message = (
            f"replies {p.dst.qualified} -> {p.src.qualified} of a granted stateful connection "
            "are not all delivered"
        )
        delivered_v[(index[(p.src.key, p.dst.key)], 1)] = Violation(
            "allowed-delivered", message, (p.dst.switch, p.dst.port), p.dst.qualified, p.src.qualified, "est",
            part, Target("missing", p.src.qualified), inp.requests[r].zones,
        )  # fmt: skip
    for disposition, ended in replies.sorted_holes():
        for p, part, r in each(ended & injected):
            key = (index[(p.src.key, p.dst.key)], 1)
            if key in holes_v:
                continue
            message = f"allowed traffic {p.src.qualified} -> {p.dst.qualified} (replies) ends {disposition}"
            holes_v[key] = Violation(
                "loop-free", message, (p.dst.switch, p.dst.port), p.src.qualified, p.dst.qualified, "est",
                part, Target("hole", disposition=disposition), inp.requests[r].zones,
            )  # fmt: skip


def reply_requests(inp: Inputs) -> tuple[list[ReplyRequest], list[list[Pair]]]:
    """Run E's injections: per destination of granted pairs with a stateful grant, and per set
    of zones where run N commits some of such a pair's forward packets, one request holding
    the replies of all those pairs (each told apart by its destination address)."""
    net, sp = inp.network, inp.spaces
    zones: dict[tuple[EndpointKey, EndpointKey], set[int]] = {}
    for (_, _, zone), committed in inp.new.sorted_commits():
        committers = inp.endpoints_of(committed)
        dsts: dict[EndpointKey, None] = {}
        for src in committers:
            dsts.update(dict.fromkeys(inp.exp.rows.get(src.key, {})))
        for d in dsts:
            hit = committed & inp.forward_tagged(net.endpoint(*d))
            for src in inp.endpoints_of(hit):
                zones.setdefault((src.key, d), set()).add(zone)
    groups: dict[tuple[EndpointKey, frozenset[int]], list[Pair]] = {}
    for p in inp.pairs:
        if p.stateful:
            z = frozenset(zones.get((p.src.key, p.dst.key), ()))
            groups.setdefault((p.dst.key, z), []).append(p)
    requests, members = [], []
    for (d, z), pairs in groups.items():
        dst = net.endpoint(*d)
        to = sp.replies_to(dst, [(p.src, p.grants) for p in pairs])
        requests.append(ReplyRequest((dst.switch, dst.port), sp.bound(dst), to, z))
        members.append(pairs)
    return requests, members


# ---------------------------------------------------------------------------- 5. loops


def loop_free(inp: Inputs) -> list[Violation]:
    """Property 5, loops: per ingress (edge-port order), the first looping or truncated
    disposition (canonical order) of run any."""
    hs = inp.hs
    first: dict[int, Violation] = {}
    for disposition, ended in inp.any.sorted_holes():
        if disposition.kind not in (LOOP, TRUNCATED):
            continue
        for t in hs.tags(ended):
            if t in first:
                continue
            switch, port = inp.ingresses[t]  # an endpoint's, or the outside's at an uplink
            message = f"packets from {switch}:{port} {disposition}"
            first[t] = Violation(
                "loop-free", message, (switch, port), inp.ingress_names[t], None, "any",
                hs.untag(ended, t), Target("hole", disposition=disposition),
            )  # fmt: skip
    return [replace(first[t], order=(0, inp.ingresses[t])) for t in sorted(first)]
