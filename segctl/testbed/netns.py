"""Network namespaces, veth pairs, addresses and routes, all through pyroute2.

Nothing here shells out to ``ip``. Only :func:`exec_argv` builds an
``ip netns exec`` command line, used by :mod:`segctl.testbed.probes` to run probe
programs (ping, python) inside a namespace.

Checksum offload: a veth hands TCP/UDP packets to its peer with the checksum left
for "hardware" to fill in. OVS's userspace datapath reads them from an AF_PACKET
socket and forwards them as they are, so the receiver sees a bad checksum and
drops the segment: ping works but TCP/UDP do not. :func:`create_veth` therefore
turns TX checksum offload off on both ends (via pyroute2's ethtool, before the
peer moves into its namespace; the setting travels with the device).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from pyroute2 import IPRoute, NetNS, netns
from pyroute2.ethtool import Ethtool

__all__ = [
    "IFNAMSIZ",
    "add_address",
    "add_default_route",
    "add_neighbour",
    "add_route",
    "create_namespace",
    "create_veth",
    "delete_link",
    "exec_argv",
    "link_exists",
    "list_links",
    "list_namespaces",
    "remove_namespace",
    "set_link_local",
    "wait_until",
]

#: Longest interface name Linux accepts (IFNAMSIZ - 1).
IFNAMSIZ = 15
_IFA_F_NODAD = 0x02
_SCOPE_LINK = 253
_TX_OFFLOADS = ("tx-checksum-ip-generic", "tx-checksum-ipv4", "tx-checksum-ipv6", "tx-checksum-sctp")


def wait_until(predicate: Callable[[], bool], *, timeout: float = 5.0, what: str = "") -> None:
    """Poll ``predicate`` until true; raise TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _check_ifname(name: str) -> None:
    if not name or len(name) > IFNAMSIZ or "/" in name or " " in name:
        raise ValueError(f"invalid interface name {name!r} (1..{IFNAMSIZ} chars, no / or space)")


# ------------------------------------------------------------------------ namespaces


def list_namespaces(prefix: str = "") -> list[str]:
    """Named network namespaces (``/run/netns``) starting with ``prefix``."""
    return sorted(n for n in netns.listnetns() if n.startswith(prefix))


def create_namespace(name: str) -> None:
    """Create a named network namespace and bring its loopback up."""
    netns.create(name)
    with NetNS(name) as ns:
        ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")


def remove_namespace(name: str) -> None:
    """Remove a named namespace (its veth ends vanish when the kernel frees it)."""
    if name in netns.listnetns():
        netns.remove(name)


# ----------------------------------------------------------------------------- links


def list_links(prefix: str = "") -> list[str]:
    """Interface names in the root namespace starting with ``prefix``."""
    with IPRoute() as ipr:
        names = [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]
    return sorted(n for n in names if n and n.startswith(prefix))


def link_exists(name: str) -> bool:
    """True if the root namespace has an interface called ``name``."""
    with IPRoute() as ipr:
        return bool(ipr.link_lookup(ifname=name))


def delete_link(name: str) -> None:
    """Delete an interface of the root namespace if it exists (a veth takes its peer)."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if found:
            ipr.link("del", index=found[0])


def _disable_tx_offload(ifname: str) -> None:
    with Ethtool() as eth:
        features = eth.get_features(ifname)
        for key in _TX_OFFLOADS:
            if key in features.features:
                features.features[key].enable = False
        eth.set_features(ifname, features)


def create_veth(
    host_ifname: str,
    namespace: str,
    *,
    ns_ifname: str = "eth0",
    mac: str | None = None,
    mtu: int | None = None,
) -> None:
    """Create a veth pair: ``host_ifname`` stays in the root namespace (up),
    the peer moves into ``namespace`` as ``ns_ifname`` (with ``mac``, up).
    """
    _check_ifname(host_ifname)
    _check_ifname(ns_ifname)
    tmp = f"{host_ifname[: IFNAMSIZ - 2]}.p"
    with IPRoute() as ipr:
        ipr.link("add", ifname=host_ifname, kind="veth", peer={"ifname": tmp})
        try:
            host_idx = ipr.link_lookup(ifname=host_ifname)[0]
            peer_idx = ipr.link_lookup(ifname=tmp)[0]
            _disable_tx_offload(host_ifname)
            _disable_tx_offload(tmp)
            if mtu:
                ipr.link("set", index=host_idx, mtu=mtu)
                ipr.link("set", index=peer_idx, mtu=mtu)
            ipr.link("set", index=peer_idx, net_ns_fd=namespace)
            ipr.link("set", index=host_idx, state="up")
        except Exception:
            ipr.link("del", index=ipr.link_lookup(ifname=host_ifname)[0])
            raise
    with NetNS(namespace) as ns:
        idx = ns.link_lookup(ifname=tmp)[0]
        settings: dict[str, object] = {"ifname": ns_ifname}
        if mac:
            settings["address"] = mac
        ns.link("set", index=idx, **settings)
        ns.link("set", index=idx, state="up")


# --------------------------------------------------------------- addresses and routes


def _index(ns: NetNS, ifname: str) -> int:
    found = ns.link_lookup(ifname=ifname)
    if not found:
        raise LookupError(f"no interface {ifname!r} in namespace")
    return int(found[0])


def add_address(namespace: str, ifname: str, address: str, prefixlen: int) -> None:
    """Add an IPv4 or IPv6 address (IPv6 without duplicate address detection)."""
    with NetNS(namespace) as ns:
        idx = _index(ns, ifname)
        if ":" in address:
            ns.addr("add", index=idx, address=address, prefixlen=prefixlen, flags=_IFA_F_NODAD)
        else:
            ns.addr("add", index=idx, address=address, prefixlen=prefixlen)


def set_link_local(namespace: str, ifname: str, address: str) -> None:
    """Make ``address`` the only link-local IPv6 address of ``ifname`` (no duplicate address
    detection): the one the kernel derived when the link came up is replaced, so a host sends
    from the address its intent declares, at once."""
    with NetNS(namespace) as ns:
        idx = _index(ns, ifname)
        for entry in ns.get_addr(index=idx, family=socket.AF_INET6):
            if entry["scope"] == _SCOPE_LINK:
                ns.addr("del", index=idx, address=entry.get_attr("IFA_ADDRESS"), prefixlen=entry["prefixlen"])
        ns.addr("add", index=idx, address=address, prefixlen=64, flags=_IFA_F_NODAD)


def add_default_route(namespace: str, gateway: str) -> None:
    """Add a default route via ``gateway`` (IPv4 or IPv6)."""
    with NetNS(namespace) as ns:
        dst = "::/0" if ":" in gateway else "0.0.0.0/0"
        ns.route("add", dst=dst, gateway=gateway)


def add_route(namespace: str, prefix: str, ifname: str) -> None:
    """Add an on-link route to ``prefix`` (IPv4 or IPv6) out of ``ifname``."""
    with NetNS(namespace) as ns:
        ns.route("add", dst=prefix, oif=_index(ns, ifname))


def add_neighbour(namespace: str, ifname: str, ip: str, mac: str) -> None:
    """Add a permanent ARP/NDP entry ``ip -> mac`` on ``ifname``."""
    with NetNS(namespace) as ns:
        ns.neigh("add", dst=ip, lladdr=mac, ifindex=_index(ns, ifname), state="permanent")


def exec_argv(namespace: str, argv: list[str]) -> list[str]:
    """Command line that runs ``argv`` inside ``namespace`` (for probe programs only)."""
    return ["ip", "netns", "exec", namespace, *argv]
