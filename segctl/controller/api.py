"""The REST API: a WSGI app (WebOb + Routes) over the controller service.

:data:`ROUTES` is the whole routing table: method, path, handler name, permission.
Every request is authenticated first (401 before anything else, so unknown paths leak
nothing), then routed (404/405), authorized (403), then its body is read (400). Errors
map to statuses in one table, :data:`ERROR_STATUS`; a response never carries a
traceback. The os-ken runner serves :class:`ApiApp` with ``hub.WSGIServer``.
"""

from __future__ import annotations

import functools
import json
import logging
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import routes
import webob
import webob.dec

from segctl.controller.audit import BodySummary, clip
from segctl.controller.auth import (
    AuthenticationError,
    Permission,
    PermissionDenied,
    Principal,
    TokenStore,
    authorize,
)
from segctl.controller.body import (
    MAX_BODY,
    BadRequest,
    BodyLimits,
    PayloadTooLarge,
    RequestTimeout,
    parse_body,
)
from segctl.controller.gate import NotFound, VerificationFailed, diffs_json
from segctl.controller.intake import CostLimitExceeded
from segctl.controller.metrics import ControllerMetrics
from segctl.controller.queue import Busy, TooManyWaiting
from segctl.controller.service import ControllerService, Offload, run_inline
from segctl.controller.store import Database, StoreError
from segctl.errors import IntentError, SegctlError, SwitchError

__all__ = [
    "ERROR_STATUS",
    "KNOWN_METHODS",
    "MAX_BODY",
    "ROUTES",
    "ApiApp",
    "BadRequest",
    "PayloadTooLarge",
    "RequestTimeout",
    "Route",
    "make_app",
]

LOG = logging.getLogger("segctl.controller.api")
READ, WRITE = Permission("read"), Permission("write")
TENANT_READ, TENANT_WRITE = Permission("read", "tenant"), Permission("write", "tenant")
#: Request methods counted by name in ``segctl_api_requests_total``; any other is ``other``
#: (a label value per method a client invents would grow the metrics without bound).
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
#: Problems of an invalid intent listed in an error answer (``problem_count`` has them all).
MAX_PROBLEMS = 100
#: Problems spelled out in an error's ``message`` when they are many.
MAX_LISTED_IN_MESSAGE = 10
#: Characters of an error message, and of one problem's location or message.
MAX_MESSAGE = 2000
#: The kinds of verification report the store keeps (``GET /v1/reports?kind=``).
REPORT_KINDS = ("gate", "live", "audit")
#: The largest id (report, revision, audit seq) a query or path may name: SQLite integers
#: are 64-bit, and a bigger number would be an error from the driver (500), not an answer.
MAX_ID = 2**62


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: str
    permission: Permission


ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/intent", "get_intent", READ),
    Route("PUT", "/v1/intent", "put_intent", WRITE),
    Route("GET", "/v1/tenants/{name}", "get_tenant", TENANT_READ),
    Route("PUT", "/v1/tenants/{name}", "put_tenant", TENANT_WRITE),
    Route("POST", "/v1/verify", "post_verify", READ),
    Route("GET", "/v1/report", "get_report", READ),
    Route("GET", "/v1/reports", "get_reports", READ),
    Route("GET", "/v1/reports/{id}", "get_report_by_id", READ),
    Route("GET", "/v1/switches", "get_switches", READ),
    Route("GET", "/v1/switches/{name}/flows", "get_switch_flows", READ),
    Route("POST", "/v1/reconcile", "post_reconcile", WRITE),
    Route("GET", "/v1/revisions", "get_revisions", READ),
    Route("POST", "/v1/revisions/{id}/rollback", "post_rollback", WRITE),
    Route("GET", "/v1/audit", "get_audit", READ),
    Route("GET", "/metrics", "get_metrics", READ),
)

#: Error class -> HTTP status. The first matching class wins.
ERROR_STATUS: tuple[tuple[type[SegctlError], int], ...] = (
    (RequestTimeout, 408),
    (PayloadTooLarge, 413),
    (CostLimitExceeded, 413),
    (TooManyWaiting, 429),
    (Busy, 503),
    (BadRequest, 400),
    (IntentError, 400),
    (AuthenticationError, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (VerificationFailed, 422),
    (SwitchError, 502),
    (StoreError, 500),
    (SegctlError, 400),
)


def _error_body(exc: SegctlError) -> dict[str, Any]:
    """The ``error`` document of a refused request. An invalid intent's problems are capped
    (:data:`MAX_PROBLEMS`, each text :func:`~segctl.controller.audit.clip`-ped), so a body
    whose every value is wrong, or whose names are a megabyte long, cannot make the answer
    (encoded on the event loop) many times its own size."""
    body: dict[str, Any] = {"type": type(exc).__name__, "message": clip(str(exc), MAX_MESSAGE)}
    if isinstance(exc, IntentError):
        problems = exc.problems
        body["problems"] = [
            {k: clip(v, MAX_MESSAGE) for k, v in p.to_json().items()} for p in problems[:MAX_PROBLEMS]
        ]
        body["problem_count"] = len(problems)
        if len(problems) > MAX_PROBLEMS or len(body["message"]) < len(str(exc)):
            shown = "\n".join(clip(str(p)) for p in problems[:MAX_LISTED_IN_MESSAGE])
            more = len(problems) - MAX_LISTED_IN_MESSAGE
            body["message"] = shown + (f"\n... and {more:,} more problems" if more > 0 else "")
    if isinstance(exc, VerificationFailed):  # a summary, like a change's answer (gate.ChangeResult)
        body["verification"] = exc.verification.summary_json(exc.report_id)
        body["diff"] = diffs_json(exc.diffs)
    return {"error": body}


def encode_json(body: Any) -> bytes:
    """The response text of ``body``: a JSON value, or a call without arguments that builds one
    (so that building it, e.g. a result's ``to_json``, runs where the encoding runs)."""
    value = body() if callable(body) else body
    return (json.dumps(value, indent=2, sort_keys=True, default=str) + "\n").encode()


def _printable(text: str, limit: int = 40) -> str:
    """``text`` (a method, a name) cut short and with control characters escaped, for a message."""
    shown = text if len(text) <= limit else text[:limit] + "..."
    return shown.encode("unicode_escape").decode("ascii") if not shown.isprintable() else shown


def _flag(request: webob.Request, name: str) -> bool:
    value = request.GET.get(name, "false").lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no", ""):
        return False
    raise BadRequest(f"query parameter {name}={value!r}: expected true or false")


def _number(text: str) -> int | None:
    """``text`` as a non-negative integer, or None: ASCII digits only (``str.isdigit`` also
    accepts ``²``, which ``int`` refuses) and at most 20 of them once leading zeros are
    dropped (more than any id; ``int`` refuses over 4,300 digits)."""
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0")
    return int(digits or "0") if len(digits) <= 20 else None


def _int_param(request: webob.Request, name: str, default: int, *, lo: int = 0, hi: int = 10_000) -> int:
    value = _optional_int_param(request, name, lo=lo, hi=hi)
    return default if value is None else value


def _optional_int_param(request: webob.Request, name: str, *, lo: int = 0, hi: int = MAX_ID) -> int | None:
    """Query parameter ``name`` as an integer ``lo..hi``, or None when it is absent."""
    text = request.GET.get(name)
    if text is None:
        return None
    value = _number(text)
    if value is None or not lo <= value <= hi:
        raise BadRequest(f"query parameter {name}={text!r}: expected an integer {lo}..{hi}")
    return value


def _path_id(text: str, what: str) -> int:
    """A path's ``{id}`` (of a ``what``: report, revision) as an integer ``0..MAX_ID``."""
    number = _number(text)
    if number is None or number > MAX_ID:
        raise BadRequest(f"{what} id {text!r}: expected an integer 0..{MAX_ID}")
    return number


def _path_text(request: webob.Request) -> str:
    """The request path as text for messages: UTF-8, undecodable bytes shown as escapes."""
    raw = request.environ.get("PATH_INFO", "")
    return str(raw).encode("latin-1", "replace").decode("utf-8", "backslashreplace")


def _utf8(value: str, what: str) -> str:
    """A WSGI string (bytes decoded as latin-1, PEP 3333) decoded as UTF-8; BadRequest if it is not."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        shown = value.encode("latin-1", "replace").decode("utf-8", "backslashreplace")
        raise BadRequest(f"{what} {shown!r} is not UTF-8") from None


def _check_query(request: webob.Request) -> None:
    """Every query parameter's name and value must be UTF-8 once percent-decoded."""
    for part in str(request.environ.get("QUERY_STRING", "")).split("&"):
        name, _, value = part.partition("=")
        for which, text in (("name", name), ("value", value)):
            try:
                urllib.parse.unquote_to_bytes(text.replace("+", " ")).decode("utf-8")
            except UnicodeDecodeError as exc:
                shown = urllib.parse.unquote_to_bytes(name).decode("utf-8", "backslashreplace")
                raise BadRequest(
                    f"query parameter {_printable(shown)}: byte {exc.start + 1} of its {which} is not UTF-8"
                ) from None


def _read_body(request: webob.Request, limits: BodyLimits) -> bytes:
    """The raw body, at most ``limits.max_bytes`` (413 beyond), sent with a Content-Length
    or chunked (``Transfer-Encoding: chunked``: the server decodes the chunks)."""
    if request.content_length is not None and request.content_length > limits.max_bytes:
        raise PayloadTooLarge(f"request body is larger than {limits.max_bytes} bytes")
    chunked = "chunked" in request.environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    stream = request.environ["wsgi.input"] if chunked else request.body_file
    try:
        raw: bytes = stream.read(limits.max_bytes + 1)
    except TimeoutError:
        raise RequestTimeout("request body: not received in time") from None
    except (OSError, ValueError) as exc:  # the server's reader: a bad chunk size, a reset
        raise BadRequest(f"request body: cannot be read ({'chunked encoding' if chunked else exc})") from None
    if len(raw) > limits.max_bytes:
        raise PayloadTooLarge(f"request body is larger than {limits.max_bytes} bytes")
    return raw


class ApiApp:
    """The WSGI application."""

    def __init__(
        self,
        service: ControllerService,
        tokens: TokenStore,
        metrics: ControllerMetrics | None = None,
        *,
        limits: BodyLimits | None = None,
        offload: Offload = run_inline,
    ):
        self.service = service
        self.tokens = tokens
        self.metrics = metrics or service.metrics
        self.limits = limits or BodyLimits()
        #: Runs CPU-heavy pure work (parsing a body, encoding a response) without stopping
        #: the event loop.
        self.offload = offload
        self.mapper = routes.Mapper(explicit=True)
        self.paths = routes.Mapper(explicit=True)
        self.by_key = {f"{r.method} {r.path}": r for r in ROUTES}
        for key, route in self.by_key.items():
            self.mapper.connect(key, route.path, route_key=key, conditions={"method": [route.method]})
        self.methods: dict[str, list[str]] = {}
        for route in ROUTES:
            self.methods.setdefault(route.path, []).append(route.method)
            if route.method == "GET":
                self.methods[route.path].append("HEAD")
        for path in self.methods:
            self.paths.connect(path, path)

    @webob.dec.wsgify
    def __call__(self, request: webob.Request) -> webob.Response:
        route_name = "unmatched"
        try:
            match = self._match(request)
            if match is not None:
                route_name = self.by_key[match["route_key"]].path
            principal = self.tokens.authenticate(request.headers.get("Authorization"))
            if match is None:
                return self._count(request, route_name, self._unmatched(request))
            route = self.by_key[match["route_key"]]
            params = {
                k: _utf8(v, f"path parameter {k}") for k, v in match.items() if "{" + k + "}" in route.path
            }
            authorize(principal, route.permission, tenant=params.get("name"))
            _check_query(request)
            handler: Callable[..., webob.Response] = getattr(self, route.handler)
            response = handler(request, principal, **params)
        except SegctlError as exc:
            status = next(code for cls, code in ERROR_STATUS if isinstance(exc, cls))
            response = self._json(status, functools.partial(_error_body, exc))
            if status == 401:
                response.www_authenticate = ("Bearer", {"realm": "segctl"})
            if isinstance(exc, Busy):
                response.retry_after = exc.retry_after
        except Exception:  # a bug: logged with its traceback, never sent to the client
            LOG.exception("internal error on %s %s", request.method, _path_text(request))
            message = "internal error; see the controller log"
            response = self._json(500, {"error": {"type": "InternalError", "message": message}})
        return self._count(request, route_name, response)

    def _json(self, status: int, body: Any) -> webob.Response:
        """A JSON response; ``body`` (or the call that builds it, see :func:`encode_json`) is
        encoded by ``offload``: a stored verification report of a dense fabric is tens of MB,
        seconds of CPU that must not stop the event loop. What it reads must not change
        meanwhile (results and reports are frozen; others are fresh values)."""
        response = webob.Response(status=status, content_type="application/json", charset="utf-8")
        response.body = self.offload(encode_json, body)
        return response

    def _match(self, request: webob.Request) -> dict[str, Any] | None:
        """The route of the request; HEAD is served by the GET route (without a body)."""
        environ = request.environ
        if request.method == "HEAD":
            environ = {**environ, "REQUEST_METHOD": "GET"}
        match: dict[str, Any] | None = self.mapper.match(environ=environ)
        return match

    def _unmatched(self, request: webob.Request) -> webob.Response:
        """404 for an unknown path, 405 with ``Allow`` for a known path and another method."""
        path = _path_text(request)
        known = self.paths.routematch(request.environ.get("PATH_INFO", ""))
        if known is None:
            raise NotFound(f"no such endpoint: {path}")
        allowed = self.methods[known[1].routepath]
        message = f"{_printable(request.method)} is not allowed on {path}; use {', '.join(allowed)}"
        response = self._json(405, {"error": {"type": "MethodNotAllowed", "message": message}})
        response.allow = allowed
        return response

    def _document(self, request: webob.Request) -> tuple[Any, BodySummary]:
        """The request body parsed (:func:`~segctl.controller.body.parse_body`, offloaded), and
        its summary for the audit log."""
        raw = _read_body(request, self.limits)
        document = self.offload(parse_body, raw, request.content_type or "", self.limits)
        return document, BodySummary.of(raw)

    def _count(self, request: webob.Request, route: str, response: webob.Response) -> webob.Response:
        method = request.method if request.method in KNOWN_METHODS else "other"
        self.metrics.api_requests.inc(method=method, route=route, status=str(response.status_code))
        return response

    # -- handlers -----------------------------------------------------------------------

    def get_intent(self, request: webob.Request, principal: Principal) -> webob.Response:
        revision = self.service.store.current()
        return self._json(
            200, {"revision": revision and revision.to_json(), "intent": self.service.document()}
        )

    def put_intent(self, request: webob.Request, principal: Principal) -> webob.Response:
        dry_run = _flag(request, "dry_run")
        document, body = self._document(request)
        result = self.service.apply(document, actor=principal.actor, dry_run=dry_run, body=body)
        return self._json(200, result.to_json)

    def get_tenant(self, request: webob.Request, principal: Principal, name: str) -> webob.Response:
        return self._json(200, {"tenant": self.service.tenant_document(name)})

    def put_tenant(self, request: webob.Request, principal: Principal, name: str) -> webob.Response:
        dry_run = _flag(request, "dry_run")
        document, body = self._document(request)
        result = self.service.update_tenant(
            name,
            document,
            actor=principal.actor,
            dry_run=dry_run,
            allow_create=principal.role == "admin",
            body=body,
        )
        return self._json(200, result.to_json)

    def post_verify(self, request: webob.Request, principal: Principal) -> webob.Response:
        return self._json(200, self.service.verify_live(actor=principal.actor).to_json)

    def get_report(self, request: webob.Request, principal: Principal) -> webob.Response:
        kind = request.GET.get("kind", "live")
        if kind not in ("live", "gate"):
            raise BadRequest(f"query parameter kind={kind!r}: expected live or gate")
        report = self.service.store.latest_report(kind=kind)
        if report is None:
            raise NotFound(f"no {kind} verification report yet")
        return self._json(200, report)

    def get_reports(self, request: webob.Request, principal: Principal) -> webob.Response:
        kind = request.GET.get("kind")
        if kind is not None and kind not in REPORT_KINDS:
            raise BadRequest(f"query parameter kind={kind!r}: expected {', '.join(REPORT_KINDS)}")
        revision = _optional_int_param(request, "revision", lo=1)
        limit = _int_param(request, "limit", 100, lo=1, hi=1000)
        before = _optional_int_param(request, "before")
        reports = self.service.store.reports(kind=kind, revision=revision, limit=limit, before=before)
        return self._json(200, {"reports": reports})

    def get_report_by_id(self, request: webob.Request, principal: Principal, id: str) -> webob.Response:
        try:
            report = self.service.store.report(_path_id(id, "report"))
        except StoreError as exc:
            raise NotFound(str(exc)) from None
        return self._json(200, report)

    def get_switches(self, request: webob.Request, principal: Principal) -> webob.Response:
        return self._json(200, {"switches": self.service.switches()})

    def get_switch_flows(self, request: webob.Request, principal: Principal, name: str) -> webob.Response:
        return self._json(200, self.service.switch_flows(name))

    def post_reconcile(self, request: webob.Request, principal: Principal) -> webob.Response:
        switch = request.GET.get("switch")
        if switch is not None and switch not in self.service.southbound.connected_switches():
            raise NotFound(f"switch {switch} is not connected")
        reports = self.service.reconcile(switch, actor=principal.actor)
        return self._json(200, lambda: {"switches": [r.to_json() for r in reports]})

    def get_revisions(self, request: webob.Request, principal: Principal) -> webob.Response:
        limit = _int_param(request, "limit", 100, lo=1)
        revisions = self.service.store.revisions(limit=limit, before=_optional_int_param(request, "before"))
        current = self.service.store.current()
        return self._json(
            200, {"current": current and current.id, "revisions": [r.to_json() for r in revisions]}
        )

    def post_rollback(self, request: webob.Request, principal: Principal, id: str) -> webob.Response:
        revision = _path_id(id, "revision")
        dry_run = _flag(request, "dry_run")
        result = self.service.rollback(revision, actor=principal.actor, dry_run=dry_run)
        return self._json(200, result.to_json)

    def get_audit(self, request: webob.Request, principal: Principal) -> webob.Response:
        from segctl.controller.audit import verify_chain

        log = self.service.audit_log
        entries = log.entries(
            after=_int_param(request, "after", 0, hi=MAX_ID),
            limit=_int_param(request, "limit", 100, lo=1, hi=1000),
            actor=request.GET.get("actor"),
            action=request.GET.get("action"),
        )
        body: dict[str, Any] = {
            "head": "{}:{}".format(*log.head()),
            "entries": [e.to_json() for e in entries],
        }
        if _flag(request, "verify"):
            body["chain_problems"] = [p.to_json() for p in verify_chain(log.db)]
        return self._json(200, body)

    def get_metrics(self, request: webob.Request, principal: Principal) -> webob.Response:
        self.metrics.connected.set(len(self.service.southbound.connected_switches()))
        response = webob.Response(status=200, content_type="text/plain", charset="utf-8")
        response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
        response.text = self.metrics.render()
        return response


def make_app(
    service: ControllerService,
    *,
    db: Database,
    metrics: ControllerMetrics | None = None,
    offload: Offload = run_inline,
) -> ApiApp:
    """The API app over ``service``, with bearer tokens kept in ``db``."""
    return ApiApp(service, TokenStore(db), metrics, offload=offload)
