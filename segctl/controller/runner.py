"""Boot the controller in-process: os-ken's AppManager, our app, the REST API, signals.

os-ken has no manager command, so :func:`run` does what ``ryu-manager`` did: configure
oslo.config (listen address, TLS files), load :class:`~segctl.controller.app.SegctlApp`
and os-ken's request/reply service, start them on the eventlet hub, serve the WSGI
app with ``hub.WSGIServer`` on the same hub, and wait. SIGTERM and SIGINT stop
everything cleanly (apps closed, listeners closed, exit status 0).

What the controller does with switches is decided by the *service* that
``make_service`` builds from the app (the southbound); the runner only wires it up.

Threading: everything runs in green threads of one OS thread, except what the service
hands to :attr:`Started.offload` (:func:`in_os_thread`): compiling and proving, pure
CPU-bound work that never yields and would otherwise stop the hub for as long as a proof
takes (seconds on a large fabric: OVS drops a controller that leaves its echo requests
unanswered, and the REST API stops answering).
"""

from __future__ import annotations

import logging
import signal
import socket
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from segctl.controller.framework import (
    FRAMEWORK,
    OFCTL_SERVICE_APP,
    PACKAGE,
    AppManager,
    cfg,
    hub,
    register_controller_options,
)
from segctl.controller.http import HttpLimits

__all__ = [
    "ApiTls",
    "Endpoint",
    "GreenRLock",
    "RunOptions",
    "Started",
    "TlsFiles",
    "in_os_thread",
    "parse_endpoint",
    "run",
]

LOG = logging.getLogger("segctl.controller")

_APPS = ["segctl.controller.app", OFCTL_SERVICE_APP]
#: ``sys.setswitchinterval`` of the controller process (CPython's default is 5 ms).
SWITCH_INTERVAL_S = 0.001

T = TypeVar("T")


@dataclass(frozen=True)
class Endpoint:
    """A listen address."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class TlsFiles:
    """OpenFlow over TLS: the controller's key and certificate, and the CA that signs switches."""

    key: Path
    cert: Path
    ca_cert: Path | None = None


@dataclass(frozen=True)
class ApiTls:
    """The REST API over TLS: its key and certificate, and the CA client certificates must
    chain to (None: no client certificate asked for)."""

    key: Path
    cert: Path
    client_ca: Path | None = None


@dataclass(frozen=True)
class RunOptions:
    """Everything ``segctl controller run`` decides."""

    listen: Endpoint
    api: Endpoint | None = None
    audit_interval: float = 0.0
    tls: TlsFiles | None = None
    api_tls: ApiTls | None = None
    http: HttpLimits = field(default_factory=HttpLimits)


def in_os_thread(func: Callable[..., T], /, *args: Any) -> T:
    """Run ``func(*args)`` in an OS thread (eventlet's pool) and wait without blocking the hub.

    Only the calling green thread waits; the others (OpenFlow echo replies and port status,
    the REST API, the audit timer) keep running. ``func`` holds the GIL while it runs
    Python, but CPython hands it over every ``sys.getswitchinterval()`` (5 ms) to a thread
    that waits for it, so the hub answers within milliseconds. ``func`` must not use the
    hub (no green locks, no switch I/O) and must not touch state the hub thread changes
    meanwhile. Its exception is re-raised here, with its traceback. Under os-ken's native
    hub (threads already) it is simply called.
    """
    if hub.HUB_TYPE != "eventlet":
        return func(*args)
    from eventlet import tpool

    def call() -> tuple[bool, Any]:
        try:
            return True, func(*args)
        except BaseException as exc:  # handed back to the caller, raised there
            return False, exc

    # tpool.execute prints the traceback of an exception it passes on; ours are results
    ok, value = tpool.execute(call)
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


@dataclass
class Started:
    """What :func:`run` hands to ``make_service``: the running app (the southbound), how
    to run a CPU-heavy pure call without stopping the hub (pass it to the service), and
    ``on_stop``: what the service started that :func:`run` must stop when it ends."""

    app: Any
    offload: Callable[..., Any] = in_os_thread
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    #: Called for each REST API connection refused over the connection cap (a metric).
    on_refused: Callable[[], None] = lambda: None


#: Builds the controller service from the running app: returns (hooks, wsgi app or None).
ServiceFactory = Callable[[Started], tuple[Any, Any]]


class GreenRLock:
    """A re-entrant lock between green threads (the owner is the green thread, not the OS thread).

    ``threading.RLock`` is useless here: every green thread runs in the same OS thread, so
    it would let them all in at once; and a blocking OS lock would stall the whole hub.
    """

    def __init__(self) -> None:
        self._sem = hub.BoundedSemaphore(1)
        self._owner: Any = None
        self._depth = 0

    def __enter__(self) -> GreenRLock:
        me = hub.getcurrent()
        if self._owner is not me:
            self._sem.acquire()
            self._owner = me
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._sem.release()


def parse_endpoint(text: str, *, default_port: int) -> Endpoint:
    """Parse ``host:port``, ``host``, ``[v6]:port`` or ``:port``. Raises ValueError."""
    host, port_text = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    host = host or "127.0.0.1"
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise ValueError(f"{text!r}: the port must be a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"{text!r}: port {port} is out of range")
    return Endpoint(host, port)


def _configure(options: RunOptions) -> None:
    """Set os-ken's oslo.config options (they are registered when os-ken's controller loads)."""
    from segctl.controller.oftls import OneLineTlsServer

    controller = register_controller_options()
    # the framework's listener logs ten lines of traceback per failed TLS handshake
    controller.StreamServer = OneLineTlsServer
    conf = cfg.CONF
    conf(args=[], project=PACKAGE, default_config_files=[])
    conf.set_override("ofp_listen_host", options.listen.host)
    if options.tls is None:
        conf.set_override("ofp_tcp_listen_port", options.listen.port)
    else:
        # os-ken listens on the SSL port only when a key and a certificate are set.
        conf.set_override("ofp_ssl_listen_port", options.listen.port)
        conf.set_override("ofp_tcp_listen_port", options.listen.port)
        conf.set_override("ctl_privkey", str(options.tls.key))
        conf.set_override("ctl_cert", str(options.tls.cert))
        if options.tls.ca_cert is not None:
            conf.set_override("ca_certs", str(options.tls.ca_cert))


def _listen(endpoint: Endpoint) -> Any:
    family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
    return hub.listen((endpoint.host, endpoint.port), family=family)


def _serve_api(
    sock: Any, app: Any, options: RunOptions, tls: ssl.SSLContext | None, on_refused: Callable[[], None]
) -> None:
    from segctl.controller.http import serve

    serve(sock, app, limits=options.http, tls=tls, on_reject=on_refused)


def _api_tls_context(files: ApiTls | None) -> ssl.SSLContext | None:
    if files is None:
        return None
    from segctl.controller.http import tls_context

    for label, path in (
        ("--api-key", files.key),
        ("--api-cert", files.cert),
        ("--api-client-ca", files.client_ca),
    ):
        if path is not None and not Path(path).is_file():
            raise ValueError(f"{label} {path}: no such file")
    try:
        return tls_context(files.cert, files.key, files.client_ca)
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"--api-cert/--api-key/--api-client-ca: {exc}") from None


def _warn_about_transport(options: RunOptions) -> None:
    """Say loudly when switches are not authenticated (OpenFlow carries every rule)."""
    if options.tls is None:
        LOG.warning(
            "OpenFlow over PLAIN TCP on %s: whoever can reach this port can pose as a switch "
            "of the fabric and read its rules, and nothing is encrypted; outside a lab use "
            "--key/--cert/--ca-cert",
            options.listen,
        )
    elif options.tls.ca_cert is None:
        LOG.warning(
            "OpenFlow over TLS WITHOUT --ca-cert: switches are not authenticated, any client "
            "(with any certificate or none) is accepted as a switch; give --ca-cert"
        )


def _check_tls(tls: TlsFiles | None) -> None:
    if tls is None:
        return
    for label, path in (("--key", tls.key), ("--cert", tls.cert), ("--ca-cert", tls.ca_cert)):
        if path is not None and not Path(path).is_file():
            raise ValueError(f"{label} {path}: no such file")


def run(
    options: RunOptions, make_service: ServiceFactory, *, reload: Callable[[], None] | None = None
) -> int:
    """Run the controller until SIGTERM/SIGINT; return the exit status (0 after a clean stop).

    ``reload`` (if given) runs on SIGHUP, on its own green thread.
    """
    from segctl.controller.app import AppConfig

    _check_tls(options.tls)
    api_tls = _api_tls_context(options.api_tls)  # a bad file fails here, before anything listens
    hub.patch(thread=False)
    # The hub shares the GIL with the OS threads that parse bodies, compile and prove: a
    # thread that waits for it gets it within one switch interval, and answering one request
    # takes several handovers (the default 5 ms made a /metrics poll wait up to 50 ms).
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    stopping: list[int] = []
    reloads: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        (reloads if signum == signal.SIGHUP else stopping).append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    manager = AppManager.get_instance()
    threads: list[Any] = []
    api_socket: Any = None
    started: Started | None = None
    try:
        manager.load_apps(_APPS)
        _configure(options)
        contexts = manager.create_contexts()
        config = AppConfig(audit_interval=options.audit_interval)
        threads = manager.instantiate_apps(segctl=config, **contexts)
        app = manager.applications["SegctlApp"]
        started = Started(app)
        hooks, wsgi_app = make_service(started)
        app.attach(hooks)
        scheme = "tls" if options.tls else "tcp"
        LOG.info("segctl controller (%s) listening for OpenFlow on %s:%s", FRAMEWORK, scheme, options.listen)
        _warn_about_transport(options)
        if options.api is not None and wsgi_app is not None:
            api_socket = _listen(options.api)
            threads.append(hub.spawn(_serve_api, api_socket, wsgi_app, options, api_tls, started.on_refused))
            LOG.info("REST API on %s://%s", "https" if api_tls else "http", options.api)
        while not stopping:
            hub.sleep(0.2)
            if reloads:
                reloads.clear()
                if reload is not None:
                    LOG.info("SIGHUP: reloading the intent")
                    hub.spawn(reload)
        LOG.info("signal %d received: stopping", stopping[0])
        return 0
    finally:
        for stop in started.on_stop if started is not None else ():
            stop()
        if api_socket is not None:
            api_socket.close()
        manager.close()
        for thread in threads:
            hub.kill(thread)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        AppManager._instance = None
        LOG.info("segctl controller stopped")
        sys.stderr.flush()
