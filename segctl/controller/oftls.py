"""os-ken's OpenFlow listener, with one log line per failed TLS handshake.

os-ken's ``StreamServer`` performs the handshake inside the connection's green thread and
lets a failure escape to the hub, which logs it with its traceback (about ten lines per
attempt: a port scan or a misconfigured switch fills the log). :class:`OneLineTlsServer`
does the same work with a handshake deadline and logs one line naming the peer and the
reason; the runner installs it in place of os-ken's before the OpenFlow listener starts.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from segctl.controller.framework import hub

__all__ = ["HANDSHAKE_TIMEOUT_S", "OneLineTlsServer"]

LOG = logging.getLogger("segctl.controller.oftls")
#: Seconds a connecting switch has to complete the TLS handshake.
HANDSHAKE_TIMEOUT_S = 10.0


class OneLineTlsServer(hub.StreamServer):  # type: ignore[misc,name-defined]
    """The framework's ``hub.StreamServer`` (same arguments, os-ken's or Ryu's) whose TLS
    failures are one line each."""

    def __init__(
        self,
        listen_info: Any,
        handle: Any = None,
        backlog: Any = None,
        spawn: str = "default",
        **ssl_args: Any,
    ) -> None:
        super().__init__(listen_info, handle, backlog, spawn)  # the listening socket, plain
        if not ssl_args:
            return
        ssl_args.setdefault("server_side", True)
        # os-ken passes a context (``ssl_ctx``); classic Ryu passes ``ssl_version`` instead
        context: ssl.SSLContext = ssl_args.pop("ssl_ctx", None) or ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_args.pop("ssl_version", None)
        context.load_cert_chain(ssl_args.pop("certfile"), ssl_args.pop("keyfile"))
        if "cert_reqs" in ssl_args:
            context.verify_mode = ssl_args.pop("cert_reqs")
        if "ca_certs" in ssl_args:
            context.load_verify_locations(ssl_args.pop("ca_certs"))
        if "ciphers" in ssl_args:
            context.set_ciphers(ssl_args.pop("ciphers"))

        def handshake_then_handle(sock: Any, address: Any) -> None:
            sock.settimeout(HANDSHAKE_TIMEOUT_S)
            try:
                tls = context.wrap_socket(sock, **ssl_args)
            except (ssl.SSLError, OSError) as exc:
                reason = exc.reason if isinstance(exc, ssl.SSLError) and exc.reason else str(exc)
                LOG.warning("OpenFlow: TLS handshake with %s failed: %s", _peer(address), reason)
                sock.close()
                return
            tls.settimeout(None)
            handle(tls, address)

        self.handle = handshake_then_handle


def _peer(address: Any) -> str:
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) and len(address) >= 2 else str(address)
