"""TLS for the REST API (``--api-cert/--api-key``, ``--api-client-ca``) and what the
controller says about its OpenFlow transport: a loud warning for plain TCP or TLS without a
client CA, one log line per failed handshake (each was ten lines of traceback)."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import time
from pathlib import Path

import pytest
from support.api_server import ApiServer, running, wait_for

from segctl.controller.tls import Pki, make_pki

pytestmark = pytest.mark.filterwarnings("ignore:Using fork:DeprecationWarning")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _client(pki: Pki, *, certificate: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    if certificate:
        context.load_cert_chain(str(pki.switch_cert), str(pki.switch_key))
    return context


def _plain_attempt(port: int, payload: bytes = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") -> None:
    with _connect(port) as sock:
        sock.sendall(payload)
        with contextlib.suppress(OSError):
            sock.recv(100)


def _connect(port: int, patience: float = 10.0) -> socket.socket:
    """A TCP connection to ``port``, retried while it is refused: the server is ready when
    its REST API is, and its OpenFlow listener may bind a moment later (a refused connect
    makes no handshake, so no log line is miscounted)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _count(server: ApiServer, text: str) -> int:
    return server.log().count(text)


def _wait_count(server: ApiServer, text: str, count: int) -> None:
    wait_for(lambda: _count(server, text) == count, timeout=10, what=f"{count} lines {text!r}")


def test_the_rest_api_over_tls(tmp_path: Path, pki: Pki) -> None:
    args = ("--api-key", str(pki.controller_key), "--api-cert", str(pki.controller_cert))
    with running(tmp_path, args=args, tls=_client(pki)) as srv:
        assert "REST API on https://" in srv.log()
        assert srv.call("GET", "/v1/revisions", role="auditor").status == 200
        for n in range(3):  # plain HTTP to the TLS port: one line each, no traceback
            _plain_attempt(srv.api_port)
            _wait_count(srv, "REST API: TLS handshake with", n + 1)
        assert "Traceback" not in srv.log()
        assert srv.call("GET", "/v1/revisions", role="auditor").status == 200  # still serving


def test_the_rest_api_can_require_client_certificates(tmp_path: Path, pki: Pki) -> None:
    args = (
        "--api-key", str(pki.controller_key), "--api-cert", str(pki.controller_cert),
        "--api-client-ca", str(pki.ca_cert),
    )  # fmt: skip
    with running(tmp_path, args=args, tls=_client(pki, certificate=True)) as srv:
        assert srv.call("GET", "/v1/revisions", role="auditor").status == 200
        conn = http.client.HTTPSConnection("127.0.0.1", srv.api_port, timeout=5, context=_client(pki))
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            conn.request("GET", "/v1/revisions")
            conn.getresponse().read()
        conn.close()
        wait_for(lambda: _count(srv, "REST API: TLS handshake with") >= 1, timeout=10, what="the log line")


def test_bad_api_tls_options_exit_2(tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]) -> None:
    from segctl.cli import main

    store = str(tmp_path / "s.db")
    base = ["controller", "run", "--store", store, "--listen", "127.0.0.1:1", "--api", "127.0.0.1:1"]
    assert main([*base, "--api-cert", str(pki.controller_cert)]) == 2
    assert "needs both --api-key and --api-cert" in capsys.readouterr().err
    assert main([*base, "--api-cert", str(pki.ca_cert), "--api-key", str(pki.switch_key)]) == 2
    assert "do not load" in capsys.readouterr().err


def test_openflow_transport_warnings_and_one_line_per_failed_handshake(tmp_path: Path, pki: Pki) -> None:
    for name in ("tcp", "tls", "mtls"):
        (tmp_path / name).mkdir()
    with running(tmp_path / "tcp", name="plain") as plain:
        assert "OpenFlow over PLAIN TCP" in plain.log()
    args = ("--key", str(pki.controller_key), "--cert", str(pki.controller_cert))
    with running(tmp_path / "tls", args=args, name="tls") as srv:
        assert "OpenFlow over TLS WITHOUT --ca-cert" in srv.log()
        lines_before = len(srv.log().splitlines())
        for n in range(3):  # a plain TCP client on the OpenFlow TLS port
            _plain_attempt(srv.of_port, b"\x04\x00\x00\x08\x00\x00\x00\x01" * 4)
            _wait_count(srv, "OpenFlow: TLS handshake with", n + 1)
        time.sleep(0.5)
        new = srv.log().splitlines()[lines_before:]
        assert len(new) == 3, new
        assert "Traceback" not in srv.log() and "uncaught exception" not in srv.log()
    args = (*args, "--ca-cert", str(pki.ca_cert))
    with running(tmp_path / "mtls", args=args, name="mtls") as srv:
        assert "WITHOUT --ca-cert" not in srv.log() and "PLAIN TCP" not in srv.log()
