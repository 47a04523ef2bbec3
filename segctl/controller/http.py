"""The REST API's HTTP server: eventlet's WSGI server with limits, and optionally TLS.

eventlet's server alone waits for ever for a request's headers and serves at most 1,024
connections, queueing the rest: 1,030 connections that never finish their headers locked
every client out. :func:`serve` runs it with

* a **header timeout**: the request line and the headers must arrive within
  :attr:`HttpLimits.header_timeout` seconds of their first byte (one byte every few
  seconds does not keep a connection), and the first byte within
  :attr:`HttpLimits.idle_timeout` (also how long an idle keep-alive connection is kept);
* a **body timeout**: each read of a body waits at most :attr:`HttpLimits.body_timeout`;
* a **connection cap**: past :attr:`HttpLimits.max_connections` open connections, a new
  one is answered ``503`` with ``Retry-After`` and closed at once (never queued);
* **TLS** when given a context (:func:`tls_context`): each handshake runs in the
  connection's own green thread within the header timeout; a failed one is one log line;
* no traceback in any answer (``debug`` off).

Runs on the controller's eventlet hub (:mod:`segctl.controller.runner`).
"""

from __future__ import annotations

import contextlib
import http
import json
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segctl.controller.framework import eventlet, eventlet_wsgi, green_ssl

__all__ = ["HttpLimits", "serve", "tls_context"]

LOG = logging.getLogger("segctl.controller.http")


@dataclass(frozen=True)
class HttpLimits:
    """What one client connection may hold of the server."""

    max_connections: int = 256
    header_timeout: float = 10.0
    idle_timeout: float = 60.0
    body_timeout: float = 30.0


class _HeaderTimeout(TimeoutError):
    """The request line and headers did not arrive in time (eventlet closes the connection)."""


def tls_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """A server context (TLS 1.2 or later) with the API's certificate; with ``client_ca``,
    every client must present a certificate it signed."""
    context = green_ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(str(client_ca))
    return context


class _Protocol(eventlet_wsgi.HttpProtocol):  # type: ignore[misc]
    """eventlet's HTTP protocol with a deadline on the request line and headers."""

    limits = HttpLimits()
    _deadline: Any = None

    def _read_request_line(self) -> Any:
        if self.rfile.closed:
            self.close_connection = 1
            return ""
        try:  # the first byte: as long as an idle connection may wait
            self.connection.settimeout(self.limits.idle_timeout)
            if not self.rfile.peek(1):
                self.close_connection = 1
                return ""
        except OSError:  # timed out, reset, or a TLS error
            self.close_connection = 1
            return ""
        self._deadline = eventlet.Timeout(self.limits.header_timeout, _HeaderTimeout())
        return super()._read_request_line()

    def get_environ(self) -> Any:
        self._cancel_deadline()  # the headers are in: the application may take its time
        return super().get_environ()

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        finally:
            self._cancel_deadline()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A request eventlet cannot parse (a bad request line, a header too long...): a
        JSON answer with an HTTP/1.1 status line (http.server answered a request line it
        took for HTTP/0.9 with bare HTML, no status line at all)."""
        reason = http.HTTPStatus(code).phrase if code in http.HTTPStatus._value2member_map_ else "Error"
        text = (message or reason)[:200].encode("ascii", "backslashreplace").decode("ascii")
        body = json.dumps({"error": {"type": "BadRequest", "message": text}}).encode()
        head = (
            f"HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.write(head.encode() + body)
            self.wfile.flush()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


_BUSY = json.dumps(
    {"error": {"type": "ServiceUnavailable", "message": "too many connections; retry in a second"}}
).encode()
_BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY), _BUSY)
)


class _Pool:
    """The pool eventlet's server spawns each connection in: at most ``max_connections``
    served; one more is answered 503 by a short-lived green thread (at most as many again;
    beyond that it is closed unanswered)."""

    def __init__(self, limits: HttpLimits, tls: ssl.SSLContext | None, on_reject: Callable[[], None]) -> None:
        self._limits = limits
        self._tls = tls
        self._on_reject = on_reject
        self._serving = eventlet.GreenPool(limits.max_connections)
        self._refusing = eventlet.GreenPool(limits.max_connections)

    def spawn(self, func: Callable[[list[Any]], None], connection: list[Any]) -> Any:
        if self._serving.free() > 0:
            return self._serving.spawn(self._serve, func, connection)
        self._on_reject()
        if self._refusing.free() > 0:
            return self._refusing.spawn(self._refuse, connection)
        return eventlet.spawn(lambda: None)  # eventlet closes the connection when it ends

    def waitall(self) -> None:
        """Stopping: the connections end with the process (an idle one would hold it)."""

    def _serve(self, func: Callable[[list[Any]], None], connection: list[Any]) -> None:
        if self._tls is not None and not self._handshake(connection):
            return
        func(connection)

    def _handshake(self, connection: list[Any]) -> bool:
        assert self._tls is not None
        address, sock = connection[0], connection[1]
        tls = self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        connection[1] = tls  # what eventlet serves and closes from now on
        try:
            with eventlet.Timeout(self._limits.header_timeout, _HeaderTimeout("no TLS handshake in time")):
                tls.do_handshake()
        except (OSError, _HeaderTimeout) as exc:
            LOG.warning("REST API: TLS handshake with %s failed: %s", _peer(address), _reason(exc))
            return False
        return True

    def _refuse(self, connection: list[Any]) -> None:
        if self._tls is not None and not self._handshake(connection):
            return
        try:
            with eventlet.Timeout(2.0, _HeaderTimeout()):
                connection[1].sendall(_BUSY_RESPONSE)
        except (OSError, _HeaderTimeout):
            pass


def _peer(address: Any) -> str:
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) and len(address) >= 2 else str(address)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or exc.__class__.__name__
    return str(exc) or exc.__class__.__name__


def serve(
    sock: socket.socket,
    app: Callable[..., Any],
    *,
    limits: HttpLimits | None = None,
    tls: ssl.SSLContext | None = None,
    on_reject: Callable[[], None] = lambda: None,
) -> None:
    """Serve ``app`` on the listening ``sock`` until the socket is closed or this green
    thread is killed; ``on_reject`` is called for each connection refused over the cap."""
    limits = limits or HttpLimits()
    protocol = type("Protocol", (_Protocol,), {"limits": limits})
    eventlet_wsgi.server(
        sock,
        app,
        log=LOG,
        log_output=False,
        debug=False,
        custom_pool=_Pool(limits, tls, on_reject),
        protocol=protocol,
        keepalive=limits.idle_timeout,
        socket_timeout=limits.body_timeout,
    )
