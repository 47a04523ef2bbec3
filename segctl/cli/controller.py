"""``segctl controller run``: the OpenFlow controller, REST API included, in one process.

::

    segctl controller run (--intent FILE | --store DB) [--listen 127.0.0.1:6653]
                          [--api 127.0.0.1:8080 | --no-api] [--audit-interval S]
                          [--keep-reports N] [--warm-after S]
                          [--key KEY --cert CERT [--ca-cert CA]]
                          [--api-key KEY --api-cert CERT [--api-client-ca CA]]
                          [--api-max-connections N] [--api-header-timeout S] [--api-idle-timeout S]
                          [--log-level LEVEL]

``--intent`` validates, compiles and verifies the file before anything listens (a bad
intent exits 2, nothing is pushed) and keeps revisions in memory; SIGHUP re-reads the
file as a new change. ``--store`` runs from the current revision of a SQLite store
(created if missing). SIGTERM/SIGINT stop the controller cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segctl.cli.common import EXIT_BAD_INPUT
from segctl.controller.store import DEFAULT_KEEP_REPORTS

if TYPE_CHECKING:
    from segctl.controller.proofs import RememberingVerifier
    from segctl.controller.runner import Started

__all__ = ["register"]

LOG = logging.getLogger("segctl.controller")
#: Seconds between two looks for a proof read back from the store that the verifier has not made.
DEFAULT_WARM_AFTER_S = 10.0
#: How long a stopping controller waits for a warm-up proof to notice it was cancelled.
WARM_UP_STOP_WAIT_S = 15.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``controller run``."""
    p = subparsers.add_parser(
        "controller",
        help="run the OpenFlow controller",
        description="The segctl OpenFlow controller (os-ken app, REST API, audits).",
    )
    sub = p.add_subparsers(dest="controller_command", metavar="COMMAND", required=True)
    run = sub.add_parser(
        "run",
        help="run the controller in the foreground until SIGTERM/Ctrl-C",
        description="Run the controller: push rules to switches that connect, react to "
        "port events, audit drift, serve the REST API. Logs go to stderr.",
    )
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--intent", metavar="FILE", type=Path, help="intent file; revisions kept in memory")
    source.add_argument("--store", metavar="DB", type=Path, help="SQLite store (created if missing)")
    run.add_argument(
        "--listen",
        default="127.0.0.1:6653",
        metavar="HOST:PORT",
        help="OpenFlow listen address (default 127.0.0.1:6653)",
    )
    api = run.add_mutually_exclusive_group()
    api.add_argument(
        "--api",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="REST API address (default 127.0.0.1:8080)",
    )
    api.add_argument("--no-api", action="store_true", help="do not serve the REST API")
    run.add_argument(
        "--audit-interval",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds between drift audits of every switch (0 disables; default 30)",
    )
    run.add_argument(
        "--keep-reports",
        type=int,
        default=DEFAULT_KEEP_REPORTS,
        metavar="N",
        help=f"verification reports kept per kind (gate, live) in the store (default {DEFAULT_KEEP_REPORTS})",
    )
    run.add_argument(
        "--warm-after",
        type=float,
        default=DEFAULT_WARM_AFTER_S,
        metavar="S",
        help="with --store: when a proof was read back from the store, prove the same tables "
        "again in the background within S seconds, so the next change is verified incrementally "
        f"(0 disables; default {DEFAULT_WARM_AFTER_S:g})",
    )
    run.add_argument(
        "--policy-log",
        type=Path,
        metavar="FILE",
        help="append one JSON line per logged decision (policies with log: true, logging.default_deny) "
        "to FILE; read it with `segctl logs FILE`",
    )
    run.add_argument("--key", type=Path, help="controller private key (OpenFlow over TLS)")
    run.add_argument("--cert", type=Path, help="controller certificate (OpenFlow over TLS)")
    run.add_argument("--ca-cert", type=Path, help="CA certificate that switch certificates must chain to")
    _add_api_options(run)
    _add_limit_options(run)
    run.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level (default info)",
    )
    run.set_defaults(func=_run)


def _add_api_options(run: argparse.ArgumentParser) -> None:
    from segctl.controller.http import HttpLimits

    limits = HttpLimits()
    run.add_argument("--api-key", type=Path, help="REST API private key (HTTPS)")
    run.add_argument("--api-cert", type=Path, help="REST API certificate (HTTPS)")
    run.add_argument(
        "--api-client-ca", type=Path, help="with --api-cert: require client certificates signed by this CA"
    )
    run.add_argument(
        "--api-max-connections",
        type=int,
        default=limits.max_connections,
        metavar="N",
        help=f"open REST API connections; one more is answered 503 (default {limits.max_connections})",
    )
    run.add_argument(
        "--api-header-timeout",
        type=float,
        default=limits.header_timeout,
        metavar="S",
        help=f"seconds for a request's line and headers (default {limits.header_timeout:g})",
    )
    run.add_argument(
        "--api-idle-timeout",
        type=float,
        default=limits.idle_timeout,
        metavar="S",
        help=f"seconds a connection may wait for its next request (default {limits.idle_timeout:g})",
    )


def _add_limit_options(run: argparse.ArgumentParser) -> None:
    from segctl.controller.intake import CostLimits

    limits = CostLimits()
    for name, what in (
        ("endpoints", "endpoints"),
        ("policies", "policies"),
        ("ports", "policy ports (a range counts its aligned blocks)"),
    ):
        for scope, where in (("", "in the intent"), ("tenant-", "in the tenant a tenant update replaces")):
            field = f"{scope.replace('-', '_')}{name}"
            run.add_argument(
                f"--max-{scope}{name}",
                type=int,
                default=getattr(limits, field),
                metavar="N",
                dest=f"max_{field}",
                help=f"most {what} {where} (413 beyond; default {getattr(limits, field):,})",
            )
    run.add_argument(
        "--queue-wait",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds a change request may wait for its turn before it is answered 503 (default 60)",
    )


def _limits(args: argparse.Namespace) -> Any:
    """The cost limits from the arguments (each must be >= 1)."""
    from dataclasses import fields

    from segctl.controller.intake import CostLimits

    values = {f.name: getattr(args, f"max_{f.name}") for f in fields(CostLimits)}
    bad = [name for name, value in values.items() if value < 1]
    if bad:
        raise ValueError(f"--max-{bad[0].replace('_', '-')} must be >= 1")
    return CostLimits(**values)


def _api_options(args: argparse.Namespace) -> tuple[Any, Any] | str:
    """The API's TLS files and HTTP limits from the arguments, or what is wrong with them."""
    from segctl.controller.http import HttpLimits
    from segctl.controller.runner import ApiTls

    if args.api_max_connections < 1:
        return "--api-max-connections must be >= 1"
    if args.api_header_timeout <= 0 or args.api_idle_timeout <= 0:
        return "--api-header-timeout and --api-idle-timeout must be > 0"
    limits = HttpLimits(args.api_max_connections, args.api_header_timeout, args.api_idle_timeout)
    if not (args.api_key or args.api_cert or args.api_client_ca):
        return None, limits
    if not (args.api_key and args.api_cert):
        return "HTTPS needs both --api-key and --api-cert (--api-client-ca is optional)"
    for label, path in (
        ("--api-key", args.api_key),
        ("--api-cert", args.api_cert),
        ("--api-client-ca", args.api_client_ca),
    ):
        if path is not None and not path.is_file():
            return f"{label} {path}: no such file"
    import ssl

    from segctl.controller.http import tls_context

    try:
        tls_context(args.api_cert, args.api_key, args.api_client_ca)
    except (ssl.SSLError, OSError) as exc:
        return f"--api-cert/--api-key/--api-client-ca do not load: {exc}"
    return ApiTls(args.api_key, args.api_cert, args.api_client_ca), limits


def _fail(message: str) -> int:
    print(f"segctl: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _run(args: argparse.Namespace) -> int:
    from segctl.controller.runner import RunOptions, TlsFiles, parse_endpoint, run

    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    logging.getLogger("eventlet.wsgi.server").setLevel(logging.WARNING)
    try:
        listen = parse_endpoint(args.listen, default_port=6653)
        api = None if args.no_api else parse_endpoint(args.api, default_port=8080)
    except ValueError as exc:
        return _fail(str(exc))
    if args.audit_interval < 0:
        return _fail("--audit-interval must be >= 0")
    if args.keep_reports < 1:
        return _fail("--keep-reports must be >= 1")
    if args.warm_after < 0:
        return _fail("--warm-after must be >= 0")
    tls = None
    if args.key or args.cert or args.ca_cert:
        if not (args.key and args.cert):
            return _fail("OpenFlow over TLS needs both --key and --cert (and usually --ca-cert)")
        tls = TlsFiles(args.key, args.cert, args.ca_cert)
        for label, path in (("--key", args.key), ("--cert", args.cert), ("--ca-cert", args.ca_cert)):
            if path is not None and not path.is_file():
                return _fail(f"{label} {path}: no such file")

    api_options = _api_options(args)
    if isinstance(api_options, str):
        return _fail(api_options)
    api_tls, limits = api_options
    try:
        limits_of_cost = _limits(args)
    except ValueError as exc:
        return _fail(str(exc))
    if args.queue_wait <= 0:
        return _fail("--queue-wait must be > 0")
    factory = _ServiceFactory(
        intent=args.intent,
        store=args.store,
        keep_reports=args.keep_reports,
        warm_after=args.warm_after,
        limits=limits_of_cost,
        queue_wait=args.queue_wait,
        policy_log=args.policy_log,
    )
    if args.policy_log is not None and args.policy_log.is_dir():
        return _fail(f"--policy-log {args.policy_log}: is a directory")
    factory.check()  # a bad intent or store fails here (exit 2), before anything listens
    options = RunOptions(
        listen=listen, api=api, audit_interval=args.audit_interval, tls=tls, api_tls=api_tls, http=limits
    )
    return run(options, factory, reload=factory.reload if args.intent else None)


def _warm_when_cold(
    verifier: RememberingVerifier, offload: Callable[..., Any], interval: float
) -> Callable[[], None]:
    """Every ``interval`` seconds, warm ``verifier`` up (in an OS thread) when a proof was read
    back since it last ran; return what stops it."""
    from segctl.controller.framework import hub

    def loop() -> None:
        while True:
            hub.sleep(interval)
            if verifier.needs_warm_up:
                offload(verifier.warm_up)

    thread = hub.spawn(loop)

    def stop() -> None:
        verifier.cancel(wait=WARM_UP_STOP_WAIT_S)
        hub.kill(thread)

    return stop


class _ServiceFactory:
    """Builds the controller service around the running app (the southbound)."""

    def __init__(
        self,
        *,
        intent: Path | None,
        store: Path | None,
        keep_reports: int = DEFAULT_KEEP_REPORTS,
        warm_after: float = DEFAULT_WARM_AFTER_S,
        limits: Any = None,
        queue_wait: float = 60.0,
        policy_log: Path | None = None,
    ) -> None:
        self.intent = intent
        self.policy_log = policy_log
        self.store_path = store
        self.keep_reports = keep_reports
        self.warm_after = warm_after
        self.limits = limits
        self.queue_wait = queue_wait
        self.service: Any = None
        self._document: Any = None

    def check(self) -> None:
        """Read and validate the intent file (raises IntentError with file:line)."""
        if self.intent is not None:
            from segctl.controller.service import intent_document
            from segctl.topology.network import load_network

            self._document = intent_document(load_network(self.intent).intent)

    def __call__(self, started: Started) -> tuple[Any, Any]:
        from segctl.controller import gate
        from segctl.controller.audit import AuditLog
        from segctl.controller.framework import hub
        from segctl.controller.metrics import ControllerMetrics
        from segctl.controller.policy_log import PolicyLogWriter
        from segctl.controller.proofs import remembering
        from segctl.controller.queue import ChangeQueue
        from segctl.controller.runner import GreenRLock
        from segctl.controller.service import ControllerService
        from segctl.controller.store import Database, Store

        db = Database(":memory:" if self.store_path is None else self.store_path)
        metrics = ControllerMetrics()
        store = Store(db, keep_reports=self.keep_reports)
        verifier: gate.Verifier = gate.default_verifier()  # never a faked verdict
        if self.store_path is not None:
            remembered = remembering(verifier, store, metrics=metrics)  # restarts read proofs back
            if self.warm_after > 0:
                started.on_stop.append(_warm_when_cold(remembered, started.offload, self.warm_after))
            verifier = remembered
        policy_log = None if self.policy_log is None else PolicyLogWriter(self.policy_log)
        if policy_log is not None:
            started.on_stop.append(policy_log.close)
        service = ControllerService(
            store,
            started.app,
            verifier,
            AuditLog(db),
            compiler=gate.default_compiler(),
            metrics=metrics,
            lock=GreenRLock(),
            offload=started.offload,  # compile and prove in an OS thread: the hub keeps running
            queue=ChangeQueue(max_wait=self.queue_wait, new_event=hub.Event, current=hub.getcurrent),
            limits=self.limits,
            policy_log=policy_log,
        )
        self.service = service
        started.on_refused = lambda: metrics.api_connections_refused.inc()
        if self._document is not None:
            result = service.apply(self._document, actor="cli", source=str(self.intent))
            LOG.info("intent %s: %s", self.intent, _describe(result))
        else:
            loaded = service.load_current()
            LOG.info(
                "store %s: %s", self.store_path, "no intent yet" if loaded is None else _describe(loaded)
            )
        return service, _wsgi_app(service, db, metrics, started.offload)

    def reload(self) -> None:
        """SIGHUP: apply the intent file again (validate, compile, verify, push)."""
        from segctl.controller.service import intent_document
        from segctl.errors import SegctlError
        from segctl.topology.network import load_network

        if self.service is None or self.intent is None:
            return
        try:
            document = intent_document(load_network(self.intent).intent)
            result = self.service.apply(document, actor="file", source=str(self.intent))
        except SegctlError as exc:
            LOG.error("reload of %s rejected, nothing pushed:\n%s", self.intent, exc)
            return
        LOG.info("reload of %s: %s", self.intent, _describe(result))


def _wsgi_app(service: Any, db: Any, metrics: Any, offload: Callable[..., Any]) -> Any:
    """The REST API's WSGI app (``segctl.controller.api.ApiApp``); bodies are parsed by ``offload``."""
    from segctl.controller.api import ApiApp
    from segctl.controller.auth import TokenStore

    return ApiApp(service, TokenStore(db), metrics, offload=offload)


def _describe(result: Any) -> str:
    data = result.to_json() if hasattr(result, "to_json") else {}
    status = data.get("status", "?")
    pushed = data.get("pushed")
    return f"{status}" + (f", pushed to {', '.join(pushed)}" if pushed else "")
