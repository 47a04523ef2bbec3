"""Build a Mininet network from a resolved intent: the intent is the one source of truth.

:func:`plan` (pure) decides every name from the :class:`~segctl.topology.network.Network`
and a run prefix; :class:`MininetFabric` builds it and removes it exactly:

* one ``OVSSwitch(datapath='user', failMode='secure', protocols='OpenFlow13,OpenFlow14')``
  per fabric switch, with the intent's datapath id;
* one Mininet ``Host`` per endpoint, with the endpoint's MAC, IPv4 (and IPv6), and a
  default route to its segment gateway (and gateway6), attached to the intent's OpenFlow port number
  (``addLink(host, switch, port2=N)``);
* one veth link per fabric link, with the intent's port numbers at both ends;
* per external network, its upstream router as a host ``<prefix>x<i>`` attached to *every*
  declared uplink port (``<node>-eth<k>``, one per port, enslaved to one learning Linux
  bridge ``<node>-br`` that carries the router's MAC and IP and an outside server address,
  :func:`~segctl.topology.outside.outside_server`): one router, reachable over whichever
  uplink is live (active/standby), the "internet" the probes reach;
* a ``RemoteController`` at the given address (or none: flows are pushed another way).

Names: switch ``<prefix>s<i>`` (also the OVS bridge name), its ports ``<bridge>p<port>``,
host ``<prefix>h<i>``. Each host's namespace is also attached as a *named* namespace
(``ip netns`` name = host name), so the probes of :mod:`segctl.testbed.probes` run in it
unchanged. TX checksum offload is turned off on every veth end: with the userspace
datapath a partial checksum would reach the receiver and TCP/UDP would fail.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from pathlib import Path
from types import TracebackType
from typing import Any

from pyroute2 import IPRoute, NetlinkError, NetNS
from pyroute2 import netns as pr_netns
from pyroute2.ethtool import Ethtool

from segctl.testbed import netns as tb_netns
from segctl.testbed import ovs
from segctl.topology.network import EndpointInfo, ExternalInfo, Network
from segctl.topology.outside import external_grants, outside_server, outside_server6, public_source6

__all__ = [
    "PREFIX_PATTERN",
    "FabricPlan",
    "HostPlan",
    "LinkPlan",
    "MininetFabric",
    "OutsidePlan",
    "SwitchPlan",
    "cleanup",
    "leftovers",
    "new_prefix",
    "plan",
]

#: Run prefixes made by :func:`new_prefix`: ``mn`` + 3 hex digits.
PREFIX_PATTERN = re.compile(r"mn[0-9a-f]{3}")
HOST_IFNAME_SUFFIX = "-eth0"
#: The outside host's bridge over its uplinks (inside its namespace); its addresses live there.
OUTSIDE_BRIDGE_SUFFIX = "-br"
_TX_OFFLOADS = ("tx-checksum-ip-generic", "tx-checksum-ipv4", "tx-checksum-ipv6", "tx-checksum-sctp")


def new_prefix() -> str:
    """A fresh run prefix (``mn`` + 3 random hex digits) so parallel runs never collide."""
    return f"mn{secrets.token_hex(2)[:3]}"


@dataclass(frozen=True)
class SwitchPlan:
    """A fabric switch: intent name, Mininet node / OVS bridge name, datapath id."""

    name: str
    node: str
    dpid: int

    def port_name(self, port: int) -> str:
        """Name of the switch-side interface at OpenFlow ``port``."""
        return f"{self.node}p{port}"


class _Host:
    """A Mininet host's names: its node is also its named namespace."""

    node: str

    @property
    def netns(self) -> str:
        return self.node

    @property
    def ifname(self) -> str:
        return f"{self.node}{HOST_IFNAME_SUFFIX}"


@dataclass(frozen=True)
class HostPlan(_Host):
    """An endpoint as a Mininet host: node name (= named netns), interface, addresses."""

    endpoint: EndpointInfo
    node: str
    prefixlen: int
    gateway: IPv4Address | None
    prefixlen6: int | None
    #: The segment's gateway6 when the endpoint has IPv6 (its IPv6 default route).
    gateway6: IPv6Address | None = None


@dataclass(frozen=True)
class OutsidePlan(_Host):
    """An external network's upstream router as a host on its uplink, with one outside
    server address: probes name it by :attr:`key`, ``("external:NAME", server)``."""

    external: ExternalInfo
    node: str
    server: IPv4Address
    #: its IPv6 server address, when the external network has IPv6 (probes of that family)
    server6: IPv6Address | None = None
    #: the tenants' prefixes it routes on the link (the fabric answers for their endpoints)
    routes6: tuple[IPv6Network, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.external.qualified, str(self.server))

    @property
    def ifname(self) -> str:
        """The router's bridge inside its namespace (its addresses; probes and frames use it)."""
        return f"{self.node}{OUTSIDE_BRIDGE_SUFFIX}"

    @property
    def uplinks(self) -> tuple[tuple[str, int], ...]:
        """Every declared uplink port ``(switch, port)``, in declared order (the first is active)."""
        return self.external.attach or ((self.external.switch, self.external.port),)

    def uplink_ifname(self, uplink: tuple[str, int]) -> str:
        """The router's end of the link to ``uplink`` (a port of its bridge)."""
        return f"{self.node}-eth{self.uplinks.index(uplink)}"


def is_outside(key: tuple[str, str]) -> bool:
    """Is ``key`` an outside host's (``external:NAME``), not an endpoint's?"""
    return key[0].startswith("external:")


@dataclass(frozen=True)
class LinkPlan:
    """A fabric link ``a:a_port <-> b:b_port`` (intent switch names)."""

    a: str
    a_port: int
    b: str
    b_port: int

    def __str__(self) -> str:
        return f"{self.a}:{self.a_port} <-> {self.b}:{self.b_port}"


@dataclass(frozen=True)
class FabricPlan:
    """Every name a :class:`MininetFabric` will create, decided up front."""

    prefix: str
    switches: tuple[SwitchPlan, ...]
    hosts: tuple[HostPlan, ...]
    links: tuple[LinkPlan, ...]
    outsides: tuple[OutsidePlan, ...] = ()

    def switch(self, name: str) -> SwitchPlan:
        """The plan of intent switch ``name``."""
        for sw in self.switches:
            if sw.name == name:
                return sw
        raise KeyError(f"no switch {name!r} in the intent")

    def host(self, ep: EndpointInfo | tuple[str, str]) -> HostPlan:
        """The plan of an endpoint (or its ``(tenant, name)`` key)."""
        key = ep if isinstance(ep, tuple) else ep.key
        for h in self.hosts:
            if h.endpoint.key == key:
                return h
        raise KeyError(f"no endpoint {key[0]}/{key[1]} in the intent")

    def outside(self, key: tuple[str, str]) -> OutsidePlan:
        """The plan of an outside host by its key."""
        for o in self.outsides:
            if o.key == key:
                return o
        raise KeyError(f"no outside host {'/'.join(key)}")

    def node(self, key: EndpointInfo | tuple[str, str]) -> HostPlan | OutsidePlan:
        """The host plan of an endpoint or of an outside host."""
        if isinstance(key, tuple) and is_outside(key):
            return self.outside(key)
        return self.host(key)

    def bridges(self) -> dict[str, str]:
        """Intent switch name -> OVS bridge name."""
        return {sw.name: sw.node for sw in self.switches}


def plan(network: Network, prefix: str) -> FabricPlan:
    """Decide the Mininet names for ``network`` under ``prefix`` (pure)."""
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise ValueError(f"prefix {prefix!r} must match {PREFIX_PATTERN.pattern}")
    switches = tuple(
        SwitchPlan(sw.name, f"{prefix}s{i}", sw.dpid) for i, sw in enumerate(network.switches, start=1)
    )
    hosts = []
    for i, ep in enumerate(network.endpoints, start=1):
        seg = network.segment(ep.tenant, ep.segment)
        hosts.append(
            HostPlan(
                endpoint=ep,
                node=f"{prefix}h{i}",
                prefixlen=seg.cidr.prefixlen,
                gateway=seg.gateway,
                gateway6=ep.ipv6_gateway,
                prefixlen6=seg.cidr6.prefixlen if seg.cidr6 is not None and ep.ipv6 is not None else None,
            )
        )
    links = tuple(LinkPlan(a, ap, b, bp) for a, ap, b, bp in network.links)
    outsides = tuple(
        OutsidePlan(
            ext,
            f"{prefix}x{ext.index}",
            outside_server(network, ext),
            outside_server6(network, ext),
            _routes6(network, ext),
        )
        for ext in network.externals
    )
    result = FabricPlan(prefix, switches, tuple(hosts), links, outsides)
    names = [*(sw.port_name(p) for sw in switches for p in _ports(result, sw.name))]
    names += [sw.node for sw in switches] + [h.ifname for h in hosts] + [o.ifname for o in outsides]
    names += [o.uplink_ifname(u) for o in outsides for u in o.uplinks]
    too_long = [n for n in names if len(n) > tb_netns.IFNAMSIZ]
    if too_long:
        raise ValueError(f"interface names longer than {tb_netns.IFNAMSIZ} chars: {too_long}")
    return result


def _routes6(network: Network, ext: ExternalInfo) -> tuple[IPv6Network, ...]:
    """The prefixes of the segments whose endpoints exchange IPv6 with ``ext`` (on-link for
    the upstream router: the fabric answers its solicitations for those endpoints)."""
    out: dict[IPv6Network, None] = {}
    for g in external_grants(network):
        if g.external == ext.name and g.family == 6:
            for ep in g.endpoints:
                cidr6 = network.segment(ep.tenant, ep.segment).cidr6
                if cidr6 is not None and public_source6(network, ep, ext.name) is not None:
                    out[cidr6] = None
    return tuple(out)


def _ports(fabric: FabricPlan, switch: str) -> list[int]:
    ports = [h.endpoint.port for h in fabric.hosts if h.endpoint.switch == switch]
    ports += [port for o in fabric.outsides for sw, port in o.uplinks if sw == switch]
    for link in fabric.links:
        if link.a == switch:
            ports.append(link.a_port)
        if link.b == switch:
            ports.append(link.b_port)
    return ports


# ------------------------------------------------------------------------------ build


def _quiet_remote(base: Any) -> Any:
    """``RemoteController`` without its telnet check: that check decodes the controller's
    binary OpenFlow HELLO as UTF-8 and can crash; the caller has already waited until the
    controller listens."""

    class QuietRemoteController(base):  # type: ignore[misc]
        def checkListening(self) -> None:
            return None

    return QuietRemoteController


def _tx_offload_off(ifname: str) -> None:
    """Turn TX checksum offload off on ``ifname`` in the current namespace."""
    with Ethtool() as eth:
        features = eth.get_features(ifname)
        for key in _TX_OFFLOADS:
            if key in features.features:
                features.features[key].enable = False
        eth.set_features(ifname, features)


def _tx_offload_off_in(namespace: str, ifname: str) -> None:
    """Same, inside a named namespace (setns on this thread, then back)."""
    pr_netns.pushns(namespace)
    try:
        _tx_offload_off(ifname)
    finally:
        pr_netns.popns()


def _router_bridge(namespace: str, name: str, mac: str, members: list[str]) -> None:
    """A Linux bridge ``name`` in ``namespace`` over ``members`` (the router's uplink ends),
    with the router's ``mac``: the router's addresses answer over whichever uplink is live.

    No STP (a port forwards as soon as it has carrier). The bridge learns MACs, like a real
    upstream switch: it sends to the fabric's MAC over the uplink it last heard it on. The
    fabric admits traffic on the active uplink only (standby ports have no rules), so after
    every move of the active uplink (a failover, or the first port back, still learned on
    the other one) the controller announces the MAC out of the new active port with a
    gratuitous ARP; the uplink-failover scenario checks that it arrives. No multicast
    snooping (solicitations for the bridge's own addresses must not depend on MLD state), no
    IPv6 on the members (they would solicit from their own random MACs), TX checksum
    offload off everywhere.
    """
    pr_netns.pushns(namespace)
    try:
        for member in members:
            Path(f"/proc/sys/net/ipv6/conf/{member}/disable_ipv6").write_text("1")
            _tx_offload_off(member)
    finally:
        pr_netns.popns()
    with NetNS(namespace) as ns:
        ns.link("add", ifname=name, kind="bridge", br_stp_state=0, br_mcast_snooping=0, address=mac)
        bridge = ns.link_lookup(ifname=name)[0]
        for member in members:
            index = ns.link_lookup(ifname=member)[0]
            ns.link("set", index=index, master=bridge, state="up")
        ns.link("set", index=bridge, state="up")
    _tx_offload_off_in(namespace, name)


class MininetFabric:
    """Context manager: build the planned network in Mininet, remove it on exit.

    ``controller`` is ``(ip, port)`` of the OpenFlow controller or ``None``. Closing
    stops Mininet and then removes every leftover named ``<prefix>*`` (bridges,
    links, named namespaces), also after a failed build.
    """

    def __init__(self, fabric: FabricPlan, *, controller: tuple[str, int] | None = None) -> None:
        self.plan = fabric
        self.controller = controller
        self.net: Any = None
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------
    def __enter__(self) -> MininetFabric:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _build(self) -> None:
        from mininet.log import setLogLevel
        from mininet.net import Mininet
        from mininet.node import Host, OVSSwitch, RemoteController

        setLogLevel("error")
        p = self.plan
        net = Mininet(controller=None, build=False, autoSetMacs=False, autoStaticArp=False)
        self.net = net
        if self.controller is not None:
            ip, port = self.controller
            net.addController(f"{p.prefix}c0", controller=_quiet_remote(RemoteController), ip=ip, port=port)
        nodes: dict[str, Any] = {}
        for sw in p.switches:
            nodes[sw.name] = net.addSwitch(
                sw.node,
                cls=OVSSwitch,
                datapath="user",
                failMode="secure",
                protocols="OpenFlow13,OpenFlow14",
                dpid=f"{sw.dpid:016x}",
            )
        for link in p.links:
            a, b = p.switch(link.a), p.switch(link.b)
            net.addLink(
                nodes[link.a],
                nodes[link.b],
                port1=link.a_port,
                port2=link.b_port,
                intfName1=a.port_name(link.a_port),
                intfName2=b.port_name(link.b_port),
            )
        for h in p.hosts:
            ep = h.endpoint
            host = net.addHost(h.node, cls=Host, ip=f"{ep.ip}/{h.prefixlen}", mac=ep.mac)
            net.addLink(
                host,
                nodes[ep.switch],
                port2=ep.port,
                intfName1=h.ifname,
                intfName2=p.switch(ep.switch).port_name(ep.port),
            )
        for o in p.outsides:
            # no address on the links themselves: the router's addresses go on its bridge
            host = net.addHost(o.node, cls=Host, ip=None)
            for switch, port in o.uplinks:
                net.addLink(host, nodes[switch], port2=port, intfName1=o.uplink_ifname((switch, port)),
                            intfName2=p.switch(switch).port_name(port))  # fmt: skip
        net.build()
        for h in p.hosts:
            self._configure_host(h)
        for o in p.outsides:
            self._configure_outside(o)
        for sw in p.switches:
            for port in _ports(p, sw.name):
                _tx_offload_off(sw.port_name(port))
        net.start()
        self._check_ports()

    def _configure_host(self, h: HostPlan) -> None:
        host = self.net.get(h.node)
        pr_netns.attach(h.netns, host.pid)
        _tx_offload_off_in(h.netns, h.ifname)
        ep = h.endpoint
        if ep.ipv6 is not None and h.prefixlen6 is not None:
            tb_netns.add_address(h.netns, h.ifname, str(ep.ipv6), h.prefixlen6)
            if ep.ipv6_link_local is not None:
                tb_netns.set_link_local(h.netns, h.ifname, str(ep.ipv6_link_local))
        if h.gateway is not None:
            tb_netns.add_default_route(h.netns, str(h.gateway))
        if h.gateway6 is not None:
            tb_netns.add_default_route(h.netns, str(h.gateway6))

    def _configure_outside(self, o: OutsidePlan) -> None:
        """The router's bridge over its uplinks, with its addresses and the outside server's."""
        pr_netns.attach(o.netns, self.net.get(o.node).pid)
        ext = o.external
        _router_bridge(o.netns, o.ifname, ext.router_mac, [o.uplink_ifname(u) for u in o.uplinks])
        tb_netns.add_address(o.netns, o.ifname, str(ext.router_ip), ext.cidr.prefixlen)
        tb_netns.add_address(o.netns, o.ifname, str(o.server), 32)
        if ext.router_ip6 is not None and ext.cidr6 is not None and o.server6 is not None:
            tb_netns.add_address(o.netns, o.ifname, str(ext.router_ip6), ext.cidr6.prefixlen)
            tb_netns.add_address(o.netns, o.ifname, str(o.server6), 128)
            for prefix in o.routes6:
                tb_netns.add_route(o.netns, str(prefix), o.ifname)

    def _check_ports(self) -> None:
        for sw in self.plan.switches:
            for port in _ports(self.plan, sw.name):
                got = ovs.get_ofport(sw.port_name(port))
                if got != port:
                    raise ovs.OvsError(
                        ["ovs-vsctl", "get", "interface", sw.port_name(port), "ofport"],
                        0,
                        f"{sw.name}:{port}: OVS gave ofport {got}",
                    )

    def close(self) -> None:
        """Stop Mininet and remove every ``<prefix>*`` leftover (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.net is not None:
                self.net.stop()
        finally:
            cleanup(self.plan.prefix)

    # -- access -------------------------------------------------------------------
    def bridge(self, switch: str) -> str:
        """OVS bridge name of intent switch ``switch``."""
        return self.plan.switch(switch).node

    def netns(self, ep: EndpointInfo | tuple[str, str]) -> str:
        """Named namespace of an endpoint's host (or of an outside host, by its key)."""
        return self.plan.node(ep).netns

    def ifname(self, ep: EndpointInfo | tuple[str, str]) -> str:
        """Interface name of an endpoint (or an outside host) inside its namespace."""
        return self.plan.node(ep).ifname

    def host_pid(self, ep: EndpointInfo | tuple[str, str]) -> int:
        return int(self.net.get(self.plan.host(ep).node).pid)

    # -- faults -------------------------------------------------------------------
    def set_link(self, link: LinkPlan, *, up: bool) -> None:
        """Bring both ends of a fabric link down or up (OVS sees the port state change)."""
        names = [
            self.plan.switch(link.a).port_name(link.a_port),
            self.plan.switch(link.b).port_name(link.b_port),
        ]
        with IPRoute() as ipr:
            for name in names:
                idx = ipr.link_lookup(ifname=name)
                if not idx:
                    raise LookupError(f"link {link}: no interface {name}")
                ipr.link("set", index=idx[0], state="up" if up else "down")

    def set_uplink(self, outside: OutsidePlan, uplink: tuple[str, int], *, up: bool) -> None:
        """Bring one uplink of an outside host down or up: the switch's port (OVS sees the port
        state change) and the router's end of that link (its bridge port)."""
        switch, port = uplink
        state = "up" if up else "down"
        name = self.plan.switch(switch).port_name(port)
        with IPRoute() as ipr:
            idx = ipr.link_lookup(ifname=name)
            if not idx:
                raise LookupError(f"uplink {switch}:{port}: no interface {name}")
            ipr.link("set", index=idx[0], state=state)
        with NetNS(outside.netns) as ns:
            ns.link("set", index=ns.link_lookup(ifname=outside.uplink_ifname(uplink))[0], state=state)

    def restart_switch(self, switch: str) -> None:
        """Restart a switch's OpenFlow state: drop its connection and every flow and meter,
        then reconnect (what a rebooted switch looks like to the controller)."""
        bridge = self.bridge(switch)
        targets = ovs.run(["ovs-vsctl", "--timeout=10", "get-controller", bridge]).split()
        ovs.del_controller(bridge)
        ovs.del_flows(bridge)
        with contextlib.suppress(ovs.OvsError):
            ovs.run(["ovs-ofctl", "-O", "OpenFlow13", "del-meters", bridge])
        if targets:
            ovs.set_controller(bridge, targets)


# ---------------------------------------------------------------------------- cleanup


def leftovers(prefix: str) -> dict[str, list[str]]:
    """Bridges, root-namespace links and named namespaces whose names start with ``prefix``."""
    return {
        "bridges": ovs.list_bridges(prefix) if ovs.ovs_running() else [],
        "links": tb_netns.list_links(prefix),
        "namespaces": tb_netns.list_namespaces(prefix),
    }


def cleanup(prefix: str) -> dict[str, list[str]]:
    """Remove everything named ``prefix*`` that a run made; return what was found.

    Processes inside our named namespaces are ours (Mininet host shells, probes) and are
    killed by pid; then bridges, links and the namespace names go.
    """
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise ValueError(f"refusing to clean {prefix!r}: not a run prefix ({PREFIX_PATTERN.pattern})")
    found = leftovers(prefix)
    if found["namespaces"]:
        for ns, pids in pr_netns.ns_pids().items():
            if ns in found["namespaces"]:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
    for br in found["bridges"]:
        ovs.delete_bridge(br)
    for link in tb_netns.list_links(prefix):
        with contextlib.suppress(NetlinkError):  # a veth goes with its peer
            tb_netns.delete_link(link)
    for ns in found["namespaces"]:
        tb_netns.remove_namespace(ns)
    return found
