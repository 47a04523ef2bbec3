"""The os-ken app: switch connections, port events, drift audits, and the OpenFlow sender.

:class:`SegctlApp` is the os-ken side of the controller. It implements the
:class:`~segctl.controller.southbound.Southbound` protocol over real switches, and
tells the controller service (through the small :class:`Hooks` protocol) when a
switch connects, disconnects, or a port goes up or down, and the state of every port of
a switch that (re)connected (read from its port descriptions: switches do not replay
port status).

Threading: os-ken runs each app's event handlers on one green thread, and the
request/reply helper (``ofctl_api.send_msg``) needs that loop free. So handlers never
block: every piece of work (initial push, resync, port event, audit) is queued to
one worker green thread that runs them in order. Southbound calls from the REST API
run on the WSGI green threads; :attr:`SegctlApp._lock` serialises all switch writes.

Messages are built by :mod:`segctl.controller.ofswitch` (pure functions) and, for the
flow mods of bundles, pre-encoded by :mod:`segctl.controller.wire`; this module holds
the only code that sends them (:meth:`SegctlApp._send`, :meth:`SegctlApp._send_bundle`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from segctl.controller import crashpoint, ofswitch, wire
from segctl.controller.framework import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    RyuApp,
    hub,
    ofctl_api,
    ofp_event,
    ofproto_v1_4,
    set_ev_cls,
)
from segctl.controller.southbound import CountedFlow, SwitchMeter, check_frame
from segctl.errors import SwitchError
from segctl.openflow.ofctl import Drop, Flow

__all__ = ["AppConfig", "Hooks", "SegctlApp"]

LOG = logging.getLogger("segctl.controller.app")

#: How long one request/reply with a switch may take before it counts as failed.
REPLY_TIMEOUT = 10.0


class Hooks(Protocol):
    """What the app tells the controller service (implemented by ``ControllerService``)."""

    def switch_name(self, dpid: int) -> str | None:
        """The fabric name of a datapath id, or ``None`` when the intent does not know it."""
        ...

    def on_switch_connected(self, switch: str) -> None:
        """A known switch (re)connected: push its whole rule set (``Southbound.resync``)."""
        ...

    def on_switch_disconnected(self, switch: str) -> None:
        """A known switch went away."""
        ...

    def on_link_status(self, switch: str, port: int, up: bool) -> None:
        """A port of a known switch went up or down."""
        ...

    def on_port_states(self, switch: str, ports: Mapping[int, bool]) -> None:
        """Every port of a known switch (number -> up), read after it (re)connected and was
        resynced; a port that is not in ``ports`` does not exist on the switch."""
        ...

    def audit(self) -> None:
        """Compare every connected switch with its desired rules and repair drift."""
        ...

    def on_packet_in(self, switch: str, cookie: int, in_port: int | None, data: bytes) -> None:
        """A known switch sent a packet (a logged decision); called on the event loop, so it
        must not block."""
        ...


@dataclass
class AppConfig:
    """How the runner configures the app (passed as the ``segctl`` keyword by AppManager).

    ``hooks`` may be set after start through :meth:`SegctlApp.attach`; ``audit_interval``
    is in seconds (0 disables the periodic audit).
    """

    hooks: Hooks | None = None
    audit_interval: float = 0.0
    on_ready: Callable[[SegctlApp], None] | None = None


class SegctlApp(RyuApp):  # type: ignore[misc]
    """The segctl OpenFlow app; implements :class:`~segctl.controller.southbound.Southbound`."""

    OFP_VERSIONS: ClassVar[list[int]] = [ofproto_v1_4.OFP_VERSION]  # bundles are OpenFlow 1.4

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        config: AppConfig = kwargs.pop("segctl", None) or AppConfig()
        super().__init__(*args, **kwargs)
        wire.install_raw_flow_stats()  # dumps: entries kept as bytes, decoded once (see wire)
        self.config = config
        self.hooks: Hooks | None = config.hooks
        self._datapaths: dict[str, Any] = {}  # switch name -> os-ken Datapath
        self._names: dict[int, str] = {}  # dpid -> switch name
        self._jobs: Any = hub.Queue()
        self._lock = hub.BoundedSemaphore(1)
        self._threads: list[Any] = []
        self._watched: set[int] = set()  # xids of pipelined bundle adds
        self._errors: dict[int, Any] = {}  # xid -> OFPErrorMsg for watched xids
        # Switches that connected before the service was attached (it loads, compiles and
        # proves its intent off the hub, so the listener is already up): admitted on attach.
        self._early: dict[int, Any] = {}
        # Connected switches the intent does not name (they hold drop-all): admitted when a
        # new intent names them (intent_switches_changed).
        self._strangers: dict[int, Any] = {}

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> Any:
        thread = super().start()
        self._threads.append(hub.spawn(self._worker))
        if self.config.audit_interval > 0:
            self._threads.append(hub.spawn(self._audit_loop, self.config.audit_interval))
        if self.config.on_ready is not None:
            self.config.on_ready(self)
        return thread

    def stop(self) -> None:
        for thread in self._threads:
            hub.kill(thread)
        hub.joinall(self._threads)
        self._threads = []
        super().stop()

    def attach(self, hooks: Hooks) -> None:
        """Connect the controller service; switches already connected are synced, and those
        that connected while it was loading are admitted now (never told "drop-all" merely
        because the service was not ready)."""
        self.hooks = hooks
        for dpid, name in list(self._names.items()):
            if hooks.switch_name(dpid) == name:
                self._enqueue(f"sync {name}", hooks.on_switch_connected, name)
        early, self._early = self._early, {}
        for dp in early.values():
            if getattr(dp, "is_active", True):
                self._admit(dp)

    def _enqueue(self, what: str, func: Callable[..., None], *args: Any) -> None:
        self._jobs.put((what, func, args))

    def _worker(self) -> None:
        while True:
            what, func, args = self._jobs.get()
            try:
                func(*args)
            except SwitchError as exc:
                LOG.error("%s failed: %s", what, exc)
            except Exception:  # a bug must not kill the worker; log it with its traceback
                LOG.exception("%s failed with an unexpected error", what)

    def _audit_loop(self, interval: float) -> None:
        while True:
            hub.sleep(interval)
            if self.hooks is not None:
                self._enqueue("audit", self.hooks.audit)

    # -- events -------------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _on_features(self, ev: Any) -> None:
        dp = ev.msg.datapath
        if self.hooks is None:
            LOG.info("switch dpid %016x connected before the intent is loaded: admitted once it is", dp.id)
            self._early[dp.id] = dp
            return
        self._admit(dp)

    def _admit(self, dp: Any) -> None:
        """A switch completed its handshake: initial push if the fabric knows it, else drop-all."""
        name = self.hooks.switch_name(dp.id) if self.hooks is not None else None
        if name is None:
            LOG.warning(
                "switch dpid %016x (%s) is not in the fabric: installing drop-all",
                dp.id,
                _peer(dp),
            )
            self._strangers[dp.id] = dp
            self._enqueue(f"drop-all {dp.id:016x}", self._drop_all, dp)
            return
        self._strangers.pop(dp.id, None)
        LOG.info("switch %s (dpid %016x) connected from %s", name, dp.id, _peer(dp))
        self._datapaths[name] = dp
        self._names[dp.id] = name
        if self.hooks is not None:
            self._enqueue(f"initial push to {name}", self._connected, name, dp)

    def _connected(self, name: str, dp: Any) -> None:
        self._wait_registered(dp)
        if self.hooks is not None and self._datapaths.get(name) is dp:
            self.hooks.on_switch_connected(name)
        # Port states are not replayed on connect: a link that went down (or came back) while
        # the switch was away is seen only by asking. After the resync, so a link change found
        # here is an ordinary change of a synced switch.
        if self.hooks is not None and self._datapaths.get(name) is dp:
            self.hooks.on_port_states(name, self._port_states(dp, name))

    def _port_states(self, dp: Any, name: str) -> dict[int, bool]:
        """Port number -> up, from the switch's port descriptions (OFPMP_PORT_DESC); reserved
        ports (LOCAL: the bridge's own interface) are left out."""
        ofp = dp.ofproto
        request = ofswitch.port_desc_request(dp)
        replies = self._send(dp, request, what=f"port descriptions of {name}", multi=True)
        ports = {
            port.port_no: ofswitch.port_is_up(port, ofp=ofp)
            for reply in replies
            for port in reply.body
            if port.port_no <= ofp.OFPP_MAX
        }
        down = sorted(n for n, up in ports.items() if not up)
        LOG.info("switch %s: %d ports, down: %s", name, len(ports), ", ".join(map(str, down)) or "none")
        return ports

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def _on_dead(self, ev: Any) -> None:
        dp = ev.datapath
        dpid: int | None = dp.id
        if dpid is None:
            return
        if self._strangers.get(dpid) is dp:
            del self._strangers[dpid]
        name = self._names.get(dpid)
        if name is None or self._datapaths.get(name) is not dp:
            return
        LOG.warning("switch %s (dpid %016x) disconnected", name, dpid)
        del self._datapaths[name]
        del self._names[dpid]
        if self.hooks is not None:
            self._enqueue(f"disconnect {name}", self.hooks.on_switch_disconnected, name)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def _on_port_status(self, ev: Any) -> None:
        msg = ev.msg
        dp = msg.datapath
        name = self._names.get(dp.id)
        if name is None or self.hooks is None:
            return
        ofp = dp.ofproto
        port = msg.desc
        up = msg.reason != ofp.OFPPR_DELETE and ofswitch.port_is_up(port, ofp=ofp)
        LOG.info(
            "switch %s port %d is %s (reason %d, state 0x%x, config 0x%x)",
            name,
            port.port_no,
            "up" if up else "down",
            msg.reason,
            port.state,
            port.config,
        )
        self._enqueue(f"port {name}:{port.port_no}", self.hooks.on_link_status, name, port.port_no, up)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _on_packet_in(self, ev: Any) -> None:
        msg = ev.msg
        name = self._names.get(msg.datapath.id)
        if name is None or self.hooks is None:
            return
        in_port = msg.match.get("in_port") if msg.match is not None else None
        try:
            self.hooks.on_packet_in(name, int(msg.cookie), in_port, bytes(msg.data or b""))
        except Exception:  # a bad packet-in must never stop the event loop
            LOG.exception("packet-in from %s not logged", name)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _on_error(self, ev: Any) -> None:
        if ev.msg.xid in self._watched:
            self._errors[ev.msg.xid] = ev.msg

    # -- unknown switches ---------------------------------------------------------------
    def _drop_all(self, dp: Any) -> None:
        self._wait_registered(dp)
        drop = Flow(table=0, priority=0, cookie=0, match=(), actions=(Drop(),))
        self._send_bundle(dp, wire.replace_all([drop]), what=f"drop-all on {dp.id:016x}")

    # -- Southbound -----------------------------------------------------------------------
    def connected_switches(self) -> set[str]:
        """Names of the connected switches that the intent knows."""
        return set(self._datapaths)

    def intent_switches_changed(self) -> None:
        """A new intent is current: a connected switch it names now (it connected before its
        dpid was in the intent, and holds drop-all) is taken on: resynced, like a switch that
        just connected."""
        if self.hooks is None:
            return
        for dpid, dp in list(self._strangers.items()):
            if not getattr(dp, "is_active", True):
                del self._strangers[dpid]
            elif self.hooks.switch_name(dpid) is not None:
                LOG.info("switch dpid %016x is in the intent now: taking it on", dpid)
                self._admit(dp)

    def push(
        self,
        switch: str,
        *,
        remove: Sequence[Flow],
        add: Sequence[Flow],
        meters: Sequence[SwitchMeter] = (),
        remove_meters: Sequence[int] = (),
    ) -> None:
        """Meters first, then one atomic bundle of strict deletes and adds, then meter deletes."""
        dp = self._datapath(switch)
        with self._lock:
            self._put_meters(dp, switch, meters)
            mods = wire.flow_changes(remove=remove, add=add)
            if mods:
                self._send_bundle(dp, mods, what=f"push to {switch}", step="bundle")
            for meter_id in sorted(set(remove_meters)):
                msg = ofswitch.meter_delete(dp, meter_id)
                self._send(dp, msg, what=f"delete meter {meter_id} on {switch}")

    def resync(self, switch: str, flows: Sequence[Flow], meters: Sequence[SwitchMeter] = ()) -> None:
        """Replace every flow of ``switch`` in one bundle; meters are made equal to ``meters``."""
        dp = self._datapath(switch)
        with self._lock:
            self._put_meters(dp, switch, meters)
            mods = wire.replace_all(flows)
            self._send_bundle(dp, mods, what=f"resync of {switch}")
            wanted = {m.meter_id for m in meters}
            for meter in self._dump_meters(dp, switch):
                if meter.meter_id not in wanted:
                    msg = ofswitch.meter_delete(dp, meter.meter_id)
                    self._send(dp, msg, what=f"delete meter {meter.meter_id} on {switch}")
        LOG.info("switch %s: %d flows, %d meters installed", switch, len(mods) - 1, len(set(meters)))

    def dump(self, switch: str) -> list[Flow]:
        """Every flow of ``switch`` (all tables), converted to parsed Flows."""
        return wire.flows_from_dump(self._flow_stats(switch), where=switch)

    def dump_counted(self, switch: str) -> list[CountedFlow]:
        """Every flow of ``switch`` with its packet and byte counters."""
        return [CountedFlow(*c) for c in wire.counted_flows_from_dump(self._flow_stats(switch), where=switch)]

    def _flow_stats(self, switch: str) -> list[Any]:
        dp = self._datapath(switch)
        replies = self._send(dp, ofswitch.flow_stats_request(dp), what=f"dump flows of {switch}", multi=True)
        return [stat for reply in replies for stat in reply.body]

    def dump_meters(self, switch: str) -> list[SwitchMeter]:
        """The meters ``switch`` holds."""
        return self._dump_meters(self._datapath(switch), switch)

    def packet_out(self, switch: str, port: int, frame: bytes) -> None:
        """Send one frame the controller built out of ``port`` (packet-out, then a barrier)."""
        check_frame(frame)
        dp = self._datapath(switch)
        with self._lock:
            self._send(dp, ofswitch.packet_out(dp, port, frame), what=f"packet-out on {switch}:{port}")

    # -- sending (the one place that talks to switches) ------------------------------------
    def _datapath(self, switch: str) -> Any:
        try:
            return self._datapaths[switch]
        except KeyError:
            raise SwitchError(f"switch {switch} is not connected") from None

    def _dump_meters(self, dp: Any, switch: str) -> list[SwitchMeter]:
        request = ofswitch.meter_config_request(dp)
        replies = self._send(dp, request, what=f"dump meters of {switch}", multi=True)
        return sorted(ofswitch.meter_from_config(c, ofp=dp.ofproto) for reply in replies for c in reply.body)

    def _put_meters(self, dp: Any, switch: str, meters: Sequence[SwitchMeter]) -> None:
        if not meters:
            return
        have = {m.meter_id: m for m in self._dump_meters(dp, switch)}
        for meter in sorted(set(meters)):
            if have.get(meter.meter_id) == meter:
                continue
            msg = ofswitch.meter_mod(dp, meter, modify=meter.meter_id in have)
            self._send(dp, msg, what=f"meter {meter.meter_id} on {switch}")

    def _send_bundle(self, dp: Any, mods: Sequence[wire.Mod], *, what: str, step: str = "") -> None:
        """Open a bundle, add ``mods``, commit atomically; discard it if anything fails.

        ``step`` names the :mod:`~segctl.controller.crashpoint` step reached when every add
        is in the switch's open bundle, just before the commit (tests only).

        The adds are pre-encoded (:mod:`segctl.controller.wire`) and written in large
        chunks with no round trip per flow; one barrier follows them, and the switch
        sends any error for an add before the barrier's reply.
        """
        bundle_id = ofswitch.next_bundle_id()
        self._send(dp, ofswitch.bundle_ctrl(dp, bundle_id, "open"), what=f"{what}: open bundle")
        sink = _XidSink()
        xids = []
        for _ in mods:
            dp.set_xid(sink)
            xids.append(sink.xid)
        adds = dict(zip(xids, mods, strict=True))
        self._watched.update(adds)
        try:
            for chunk in wire.bundle_add_frames(bundle_id, mods, xids):
                if dp.send(chunk) is False:
                    raise SwitchError(f"{what}: the connection to the switch is closed")
                hub.sleep(0)  # let the send loop write it: the switch works while we encode
            self._send(dp, ofswitch.barrier(dp), what=f"{what}: barrier after the bundle adds")
            self._settle_events()
            failed = sorted(x for x in adds if x in self._errors)
            if failed:
                error = self._errors[failed[0]]
                raise SwitchError(
                    f"{what}: {adds[failed[0]].describe()}: switch error type {error.type} code {error.code}"
                    + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else "")
                )
        except SwitchError:
            self._discard(dp, bundle_id, what)
            raise
        finally:
            self._watched.difference_update(adds)
            for xid in adds:
                self._errors.pop(xid, None)
        if step:
            crashpoint.reached(step)
        self._send(dp, ofswitch.bundle_ctrl(dp, bundle_id, "commit"), what=f"{what}: commit")
        self._send(dp, ofswitch.barrier(dp), what=f"{what}: barrier")

    def _settle_events(self) -> None:
        """Let this app's event loop handle what is already queued (errors before a barrier reply)."""
        for _ in range(1000):
            if self.events.empty():
                return
            hub.sleep(0)

    def _discard(self, dp: Any, bundle_id: int, what: str) -> None:
        try:
            self._send(dp, ofswitch.bundle_ctrl(dp, bundle_id, "discard"), what=f"{what}: discard")
        except SwitchError as exc:
            LOG.warning("%s: discarding bundle %d failed: %s", what, bundle_id, exc)

    def _send(self, dp: Any, msg: Any, *, what: str, multi: bool = False) -> Any:
        """Send one message and wait for its reply (and a barrier); raise SwitchError on error."""
        reply_cls = ofswitch.reply_class(msg)
        try:
            with hub.Timeout(REPLY_TIMEOUT):
                return ofctl_api.send_msg(self, msg, reply_cls=reply_cls, reply_multi=multi)
        except hub.Timeout:
            raise SwitchError(f"{what}: no reply within {REPLY_TIMEOUT:g} s") from None
        except ofswitch.OFCTL_ERRORS as exc:
            raise SwitchError(f"{what}: {ofswitch.describe_error(exc)}") from None

    def _wait_registered(self, dp: Any, timeout: float = 5.0) -> None:
        """Wait until the request/reply service knows ``dp`` (its features handler ran)."""
        deadline = timeout
        while deadline > 0:
            if ofctl_api.get_datapath(self, dp.id) is dp:
                return
            hub.sleep(0.02)
            deadline -= 0.02
        raise SwitchError(f"switch {dp.id:016x} did not finish its handshake")


class _XidSink:
    """Receives an xid from ``Datapath.set_xid`` (which numbers os-ken message objects)."""

    xid = 0

    def set_xid(self, xid: int) -> None:
        self.xid = xid


def _peer(dp: Any) -> str:
    address = getattr(dp, "address", None)
    return f"{address[0]}:{address[1]}" if address else "?"
