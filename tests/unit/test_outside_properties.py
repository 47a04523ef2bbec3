"""The properties of external networks (egress, exposure, external-delivered) on
``examples/internet.yaml``: the compiled tables verify clean with both engines (identical
reports), and each hand edit of the kind a buggy compiler or an operator could make is
caught by the property it breaks, with a counterexample the simulator confirms."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest
from support.agreement import assert_same, compiled_lines, doc, partitioned, reference_and_wavefront
from support.mutations import Flows
from support.random_tables import parse_tables

from segctl.reports.html import render_html
from segctl.reports.markdown import render_markdown
from segctl.topology.network import Network, load_network
from segctl.verifier.properties import OUTSIDE, REGISTRY, registry_for
from segctl.verifier.report import VerificationReport
from segctl.verifier.verify import verify

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "internet.yaml"


@cache
def _network() -> Network:
    return load_network(EXAMPLE)


def _flows() -> Flows:
    return {sw: list(lines) for sw, lines in compiled_lines(_network()).items()}


def _edit(flows: Flows, switch: str, pattern: str, fn: Callable[[str], str | None]) -> None:
    """Apply ``fn`` to every line of ``switch`` matching ``pattern`` (None deletes it)."""
    hits = [i for i, line in enumerate(flows[switch]) if re.search(pattern, line)]
    assert hits, f"nothing matches {pattern!r} on {switch}"
    for i in reversed(hits):
        new = fn(flows[switch][i])
        if new is None:
            del flows[switch][i]
        else:
            flows[switch][i] = new


def untranslated(flows: Flows) -> None:
    """acme/app1 leaves without its source translation, and the uplink's guard is gone."""
    _edit(
        flows, "edge2", r"table=52,.*nw_src=10\.0\.2\.10,", lambda s: s.replace(",nat(src=198.51.100.10)", "")
    )
    _edit(flows, "edge2", r"table=53,priority=1000", lambda s: s.replace(",nw_src=198.51.100.0/24", ""))


def other_tenants_snat(flows: Flows) -> None:
    """acme/app1 leaves with globex's SNAT address."""
    _edit(
        flows,
        "edge2",
        r"table=52,.*nw_src=10\.0\.2\.10,",
        lambda s: s.replace("198.51.100.10", "198.51.100.11"),
    )


def egress_port_widened(flows: Flows) -> None:
    """globex's egress grant loses its port: every TCP port leaves."""
    _edit(flows, "edge1", r"table=30,.*metadata=0x1002/.*tcp_dst=80", lambda s: s.replace(",tcp_dst=80", ""))


def ingress_port_widened(flows: Flows) -> None:
    """web1's ingress grant takes every TCP port instead of 80."""
    _edit(
        flows,
        "edge1",
        r"table=70,.*metadata=0xfff00001/.*tcp_dst=80,",
        lambda s: s.replace(",tcp_dst=80", ""),
    )


def outside_not_marked(flows: Flows) -> None:
    """edge1 delivers the outside's packets without their ORIGIN mark: the intra-segment allow
    takes a packet whose (spoofed) source claims web1's segment."""
    _edit(flows, "edge1", r"table=50,priority=1500,.*dl_src=02:5e:ff:00:00:01", lambda s: None)


def route_missing(flows: Flows) -> None:
    """globex's gateway on edge1 has no route to the outside."""
    _edit(flows, "edge1", r"table=40,.*metadata=0x2/0xfff00fff,nw_dst=203\.0\.113\.0/24", lambda s: None)


def floating_replies_untranslated(flows: Flows) -> None:
    """web1's rule in nat_out is gone: its replies to the connections the outside opens to its
    floating IP are not translated back and the uplink's guard drops them."""
    _edit(flows, "edge2", r"table=52,.*metadata=0xff001/.*nw_src=10\.0\.1\.10,", lambda s: None)


def replies_not_routed_in(flows: Flows) -> None:
    """The uplink's switch no longer routes what comes back for acme/app1 (10.0.2.10)."""
    _edit(flows, "edge2", r"table=47,.*ct_zone=4097,nw_dst=10\.0\.2\.10,", lambda s: None)


def globex_replies_not_routed_in(flows: Flows) -> None:
    """Nor for globex/gweb1 (10.0.1.10 in globex's NAT zone): a tenant a partitioned proof
    puts in a part without the uplink (its replies were checked nowhere there)."""
    _edit(flows, "edge2", r"table=47,.*ct_zone=4098,nw_dst=10\.0\.1\.10,", lambda s: None)


@pytest.mark.parametrize(
    ("mutate", "prop", "words"),
    [
        (untranslated, "egress", "acme/app1 leaves through external internet with source 10.0.2.10"),
        (
            other_tenants_snat,
            "egress",
            "acme/app1 leaves through external internet with source 198.51.100.11",
        ),
        (egress_port_widened, "egress", "globex/gweb1 sends to external internet traffic no policy allows"),
        (ingress_port_widened, "exposure", "the outside (internet) can open connections to acme/web1"),
        (outside_not_marked, "exposure", "the outside (internet) can open connections to acme/web1"),
        (route_missing, "external-delivered", "granted traffic globex/gweb1 -> external internet"),
        (replies_not_routed_in, "external-delivered", "replies from the outside (internet) to acme/app1's"),
        (
            globex_replies_not_routed_in,
            "external-delivered",
            "replies from the outside (internet) to globex/gweb1's",
        ),
        (
            floating_replies_untranslated,
            "external-delivered",
            "replies of acme/web1 to the connections the outside (internet) may open to it do not all leave",
        ),
    ],
    ids=lambda v: v.__name__ if callable(v) else None,
)
def test_each_edit_is_caught(mutate: Callable[[Flows], None], prop: str, words: str) -> None:
    flows = _flows()
    mutate(flows)
    report = verify(_network(), parse_tables(flows))
    failing = report.property(prop)
    assert not failing.holds
    messages = [cx.message for cx in failing.counterexamples]
    assert any(words in m for m in messages), messages
    delivered = [cx for cx in failing.counterexamples if cx.disposition_kind == "delivered"]
    assert all(cx.confirmed for cx in delivered), "the simulator agrees with each delivered counterexample"
    # a proof in parts of whole tenants (--jobs) writes the same report
    tables = parse_tables(flows)
    assert_same(doc(report), partitioned(_network(), tables, "wavefront", 2), names=("single", "2 parts"))


def test_the_example_verifies_with_every_property() -> None:
    report = verify(_network(), parse_tables(_flows()))
    assert report.ok
    assert [p.id for p in report.properties] == [p.id for p in REGISTRY + OUTSIDE]


def test_both_engines_agree() -> None:
    tables = parse_tables(_flows())
    reference, wavefront = reference_and_wavefront(_network(), tables)
    assert reference == wavefront
    flows = _flows()
    ingress_port_widened(flows)
    reference, wavefront = reference_and_wavefront(_network(), parse_tables(flows))
    assert reference == wavefront


def test_reports_without_externals_are_unchanged() -> None:
    """An intent without external networks checks the six properties it always had."""
    network = load_network(EXAMPLE.parent / "two-tenants.yaml")
    assert registry_for(network) == REGISTRY


@pytest.mark.parametrize(
    ("args", "verdict", "fate"),
    [
        (["--from", "acme/app1", "--to", "8.8.8.8", "--dport", "443"],
         "allowed by policy acme/updates toward external internet, leaving with source 198.51.100.10",
         "delivered to external:internet (edge2:48)"),
        (["--from", "globex/gweb1", "--to", "203.0.113.7", "--dport", "80"],
         "allowed by policy globex/out toward external internet, leaving with source 198.51.100.11",
         "delivered to external:internet (edge2:48)"),
        (["--from", "acme/app1", "--to", "8.8.8.8", "--dport", "80"],
         "denied: no endpoint has the address 8.8.8.8", "dropped at edge1 table 30"),
    ],
)  # fmt: skip
def test_trace_to_the_outside(
    args: list[str], verdict: str, fate: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from segctl.cli import main

    assert main(["trace", str(EXAMPLE), *args]) == 0
    out = capsys.readouterr().out
    assert f"intent: {verdict}" in out and fate in out and "ok: the tables agree with the intent" in out


def _ways(report: VerificationReport) -> dict[str, tuple[str, bool, str, bool]]:
    return {c.endpoint: (c.egress.status, c.egress.observed, c.ingress.status, c.ingress.observed)
            for c in report.outside}  # fmt: skip


def test_the_outside_cells_say_what_is_granted_and_delivered() -> None:
    report = verify(_network(), parse_tables(_flows()))
    assert _ways(report) == {
        "acme/web1": ("denied", False, "allowed", True),
        "acme/app1": ("allowed", True, "denied", False),
        "acme/app2": ("allowed", True, "denied", False),
        "globex/gweb1": ("allowed", True, "denied", False),
        "globex/gweb2": ("allowed", True, "denied", False),
    }
    web1 = next(c for c in report.outside if c.endpoint == "acme/web1")
    assert (web1.public, web1.ingress.policies, web1.ingress.services) == (
        "198.51.100.20", ("acme/public-web",), "tcp/80,443",
    )  # fmt: skip
    doc = report.to_json()
    assert doc["outside"][0]["ingress"] == {"policies": ["acme/public-web"], "services": "tcp/80,443",
                                            "observed": True, "status": "allowed"}  # fmt: skip
    markdown, page = render_markdown(report), render_html(report)
    assert (
        "### The outside" in markdown
        and "| acme/web1 | 198.51.100.20 | · | tcp/80,443 (delivered) |" in markdown
    )
    assert "<h3>The outside</h3>" in page and "from external:internet" in page
    assert page.count('class="external"') == 1 and ">internet</text>" in page  # in the topology picture


@pytest.mark.parametrize(
    ("mutate", "endpoint", "way"),
    [
        # the replies of its connections (packets from the outside) do not come back either
        (untranslated, "acme/app1", ("violation", True, "violation", False)),
        (route_missing, "globex/gweb1", ("violation", False, "violation", False)),
        (ingress_port_widened, "acme/web1", ("denied", False, "violation", True)),
    ],
    ids=lambda v: v.__name__ if callable(v) else None,
)
def test_the_outside_cells_show_violations(
    mutate: Callable[[Flows], None], endpoint: str, way: tuple[str, bool, str, bool]
) -> None:
    flows = _flows()
    mutate(flows)
    assert _ways(verify(_network(), parse_tables(flows)))[endpoint] == way


def test_reports_without_externals_have_no_outside_section() -> None:
    network = load_network(EXAMPLE.parent / "two-tenants.yaml")
    report = verify(network, parse_tables({sw: list(ls) for sw, ls in compiled_lines(network).items()}))
    assert report.outside == [] and "outside" not in report.to_json()
    assert "The outside" not in render_markdown(report) and "The outside" not in render_html(report)
    assert 'class="external"' not in render_html(report)


# ----------------------------------------------------------- IPv6 with the outside (dual-stack)

DUAL = EXAMPLE.parent / "dual-stack.yaml"


@cache
def _dual() -> Network:
    return load_network(DUAL)


def _dual_flows() -> Flows:
    return {sw: list(lines) for sw, lines in compiled_lines(_dual()).items()}


def v6_egress_widened(flows: Flows) -> None:
    """db2's IPv6 egress grant (TCP 443) takes every TCP port."""
    _edit(
        flows,
        "s1",
        r"table=30,.*tcp6,.*tcp_dst=443,actions=conjunction\(262148",
        lambda s: s.replace(",tcp_dst=443", ""),
    )


def v6_route_missing(flows: Flows) -> None:
    """acme's gateway on s1 has no IPv6 route to the outside."""
    _edit(flows, "s1", r"table=40,priority=232,.*ipv6_dst=2001:db8::/32", lambda s: None)


def v6_solicitations_pass(flows: Flows) -> None:
    """The uplink no longer drops the outside's neighbour solicitations: one to an endpoint's
    address passes conntrack and policy, as neighbour discovery inside a segment does."""
    _edit(flows, "s2", r"table=46,priority=1500,.*icmp_type=135,actions=drop", lambda s: None)


def v6_replies_stay_in(flows: Flows) -> None:
    """db1's IPv6 rule in nat_out is gone: its echo replies to the outside never leave."""
    _edit(flows, "s2", r"table=52,.*ipv6_src=fd00:1:2::11,", lambda s: None)


def v6_ingress_widened(flows: Flows) -> None:
    """db1's IPv6 ingress grant (ICMPv6 echo from 2001:db8::/32) takes it from anywhere."""
    _edit(
        flows,
        "s2",
        r"table=70,.*icmp_type=128,ipv6_src=2001:db8::/32,",
        lambda s: s.replace(",ipv6_src=2001:db8::/32", ""),
    )


@pytest.mark.parametrize(
    ("mutate", "prop", "words"),
    [
        (v6_egress_widened, "egress", "acme/db2 sends to external internet traffic no policy allows"),
        (v6_route_missing, "external-delivered", "granted traffic acme/db2 -> external internet"),
        (v6_solicitations_pass, "exposure", "the outside (internet) can open connections to acme/db1"),
        (v6_ingress_widened, "exposure", "the outside (internet) can open connections to acme/db1"),
        (v6_replies_stay_in, "external-delivered", "replies of acme/db1 to the connections the outside"),
    ],
    ids=lambda v: v.__name__ if callable(v) else None,
)
def test_each_ipv6_edit_is_caught(mutate: Callable[[Flows], None], prop: str, words: str) -> None:
    assert verify(_dual(), parse_tables(_dual_flows())).ok
    flows = _dual_flows()
    mutate(flows)
    report = verify(_dual(), parse_tables(flows))
    failing = report.property(prop)
    messages = [cx.message for cx in failing.counterexamples]
    assert not failing.holds and any(words in m for m in messages), messages
    delivered = [cx for cx in failing.counterexamples if cx.disposition_kind == "delivered"]
    assert all(cx.confirmed for cx in delivered), "the simulator agrees with each delivered counterexample"
    # a proof in parts of whole tenants (--jobs) writes the same report
    tables = parse_tables(flows)
    assert_same(doc(report), partitioned(_dual(), tables, "wavefront", 2), names=("single", "2 parts"))


def test_both_engines_agree_with_ipv6_outside() -> None:
    reference, wavefront = reference_and_wavefront(_dual(), parse_tables(_dual_flows()))
    assert reference == wavefront
    flows = _dual_flows()
    v6_solicitations_pass(flows)
    reference, wavefront = reference_and_wavefront(_dual(), parse_tables(flows))
    assert reference == wavefront


def test_the_outside_cells_show_ipv6() -> None:
    report = verify(_dual(), parse_tables(_dual_flows()))
    cells = {c.endpoint: c for c in report.outside}
    assert (cells["acme/db2"].public6, cells["acme/db2"].egress.services) == ("fd00:1:2::12", "tcp/443")
    assert (cells["acme/db1"].ingress.services, cells["acme/db1"].ingress.observed) == (
        "icmp6/type=128",
        True,
    )
    assert cells["acme/web1"].public6 == ""  # no IPv6 policy with the outside
