"""The REST API of a real controller process (``segctl controller run``), no switches.

What only the process shows: its event loop keeps answering (a ``/metrics`` poll within
100 ms) while hostile requests are handled, and the HTTP server's own limits."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.api_server import LEAF_SPINE, ApiServer, Poller, Reply, running

pytestmark = pytest.mark.filterwarnings("ignore:Using fork:DeprecationWarning")

#: A concurrent GET /metrics must be answered within this while a hostile request is handled
#: (or within :data:`IDLE_FACTOR` times the slowest answer on an idle API, measured in the same
#: run, when the machine is that loaded: a stopped event loop takes seconds either way).
POLL_BOUND_S = 0.100
IDLE_FACTOR = 5


def alias_bomb(levels: int = 6) -> str:
    """The 341-byte body of issue 15: ten aliases of the level below, per level (10**7 leaves)."""
    lines = ["l0: &l0 [x,x,x,x,x,x,x,x,x,x]"]
    lines += [f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with running(Path(tmp_path_factory.mktemp("api-server"))) as srv:
        reply = srv.call(
            "PUT", "/v1/intent", LEAF_SPINE.read_text(), content_type="application/yaml", timeout=120
        )
        assert reply.status == 200, reply.body[:500]
        yield srv


def _state(server: ApiServer) -> tuple[object, ...]:
    revisions = server.call("GET", "/v1/revisions", role="auditor").json()
    return revisions["current"], len(revisions["revisions"])


HOSTILE: list[tuple[str, str, str, str]] = [
    ("acme-admin", "/v1/tenants/acme", alias_bomb(), "application/yaml"),
    ("admin", "/v1/intent", alias_bomb(7), "application/yaml"),
    ("admin", "/v1/intent", "x: &a [*a]\n", "application/yaml"),
    ("admin", "/v1/intent", "[" * 1000 + "]" * 1000, "application/json"),
    ("admin", "/v1/intent", "[" * 2000 + "]" * 2000, "application/yaml"),
    ("admin", "/v1/intent", '{"fabric": ' + "9" * 5000 + "}", "application/json"),
    ("admin", "/v1/intent", '{"tenants": ["\\ud800"]}', "application/json"),
    ("admin", "/v1/intent", "[" + "1," * 240_000 + "1]", "application/json"),
    ("admin", "/v1/intent", "[" + "1," * 2_000_000 + "1]", "application/json"),
    ("admin", "/v1/intent", "[" + "1," * 600_000 + "1]", "application/yaml"),
    # 120,000 unknown keys: as many problems (the answer and the audit entry were each
    # megabytes, encoded on the event loop)
    ("admin", "/v1/intent", "{" + ",".join(f'"k{i}": {i}' for i in range(120_000)) + "}", "application/json"),
    # 240,000 wrong list items: listing every problem held the GIL for 0.6 s
    (
        "admin",
        "/v1/intent",
        '{"fabric": {"switches": []}, "tenants": [' + "1," * 240_000 + "1]}",
        "application/json",
    ),
    ("acme-admin", "/v1/tenants/acme", '{"segments": [' + "1," * 200_000 + "1]}", "application/json"),
    # 100,000 empty objects, two missing fields each: pydantic held the GIL 0.27 s for them
    ("acme-admin", "/v1/tenants/acme", '{"segments": [' + "{}," * 100_000 + "{}]}", "application/json"),
]


@pytest.fixture(scope="module")
def poll_bound(server: ApiServer) -> float:
    """:data:`POLL_BOUND_S`, or more on a loaded machine: :data:`IDLE_FACTOR` times the slowest
    ``GET /metrics`` answer while nothing else is sent (one second of polling)."""
    with Poller(server, interval=0.01) as poll:
        time.sleep(1.0)
    assert not poll.failures, poll.failures[:5]
    return max(POLL_BOUND_S, IDLE_FACTOR * poll.worst)


def worst_poll_while(server: ApiServer, send: Callable[[], Reply], *, tries: int = 3) -> tuple[float, Reply]:
    """The slowest answer to GET /metrics, polled every 10 ms while ``send`` runs; the best of
    up to ``tries`` runs (this machine is shared: another process may take both CPUs for a
    moment, and a controller that does stop its event loop is slow in every run)."""
    best = float("inf")
    for _ in range(tries):
        with Poller(server, interval=0.01) as poll:
            time.sleep(0.05)
            reply = send()
            time.sleep(0.05)
        assert not poll.failures, poll.failures[:5]
        best = min(best, poll.worst)
        if best < POLL_BOUND_S:
            break
    return best, reply


@pytest.mark.parametrize(
    ("role", "path", "body", "content_type"), HOSTILE, ids=[f"{len(h[2])}B-{h[3][12:]}" for h in HOSTILE]
)
def test_hostile_bodies_do_not_stop_the_event_loop(
    server: ApiServer, poll_bound: float, role: str, path: str, body: str, content_type: str
) -> None:
    """Each hostile body is refused (4xx, within seconds) while a concurrent GET /metrics is
    answered within 100 ms all along; nothing changes. Before the bodies were parsed off the
    event loop under a budget, the alias bomb alone stopped everything for 22 s (2.2 GB)."""
    before = _state(server)
    worst, reply = worst_poll_while(
        server, lambda: server.call("PUT", path, body, role=role, content_type=content_type, timeout=120)
    )
    assert 400 <= reply.status < 500, (body[:80], reply.status, reply.body[:300])
    assert reply.seconds < 10, reply.seconds
    took = f"GET /metrics took {worst:.3f} s (bound {poll_bound:.3f} s)"
    assert worst < poll_bound, f"{took} while this body was handled"
    assert _state(server) == before


def test_a_chunked_body_is_read(server: ApiServer) -> None:
    """``Transfer-Encoding: chunked`` (curl -T -, most streaming clients): the body was read
    as empty, a 400 "request body is empty"."""
    text = LEAF_SPINE.read_text().encode()
    conn = server.connection()
    try:
        conn.putrequest("PUT", "/v1/intent?dry_run=true")
        for name, value in (
            ("Authorization", f"Bearer {server.tokens['admin']}"),
            ("Content-Type", "application/yaml"),
            ("Transfer-Encoding", "chunked"),
        ):
            conn.putheader(name, value)
        conn.endheaders()
        for start in range(0, len(text), 1000):
            piece = text[start : start + 1000]
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 200, body[:300]
    assert json.loads(body)["status"] == "dry_run"


def _half_open(server: ApiServer, n: int) -> list[socket.socket]:
    """``n`` connections that send half a request line and then nothing."""
    out = []
    for _ in range(n):
        sock = socket.create_connection(("127.0.0.1", server.api_port), timeout=10)
        sock.sendall(b"GET /v1/intent HTTP/1.1\r\nHost: x\r\n")
        out.append(sock)
    return out


def test_idle_connections_cannot_lock_out_the_api(tmp_path: Path) -> None:
    """1,030 unauthenticated connections with unfinished headers made an authenticated GET
    time out (eventlet serves 1,024 at a time and waits for headers for ever). Now a
    connection over the cap is answered 503 at once, and an unfinished request is closed
    after the header timeout, so the GET succeeds within seconds."""
    args = ("--api-max-connections", "50", "--api-header-timeout", "3", "--api-idle-timeout", "3")
    with running(tmp_path, args=args) as srv:
        socks = _half_open(srv, 60)
        try:
            started = time.monotonic()
            time.sleep(0.3)  # the server accepts them all
            busy = srv.call("GET", "/v1/revisions", role="auditor", timeout=5)
            assert busy.status == 503 and busy.headers["Retry-After"] == "1", busy
            assert busy.json()["error"]["type"] == "ServiceUnavailable"
            while True:  # a well-behaved client retries after Retry-After
                reply = srv.call("GET", "/v1/revisions", role="auditor", timeout=5)
                if reply.status != 503 or time.monotonic() - started > 15:
                    break
                time.sleep(0.2)
            assert reply.status == 200, reply
            assert time.monotonic() - started < 8
            # the half-open connections were closed by the server
            closed = 0
            for sock in socks:
                sock.settimeout(5)
                try:
                    closed += sock.recv(1) == b""
                except OSError:
                    closed += 1
            assert closed >= 50, closed
        finally:
            for sock in socks:
                sock.close()
        metrics = srv.call("GET", "/metrics", role="auditor").body.decode()
        assert "segctl_api_connections_refused_total " in metrics
        assert "segctl_api_connections_refused_total 0" not in metrics


def test_a_request_dripped_byte_by_byte_is_cut_off(tmp_path: Path) -> None:
    """One header byte every 0.3 s keeps every read within any per-read timeout: the
    header deadline (1 s here) closes it all the same."""
    with running(tmp_path, args=("--api-header-timeout", "1")) as srv:
        sock = socket.create_connection(("127.0.0.1", srv.api_port), timeout=10)
        started = time.monotonic()
        try:
            for byte in b"GET /v1/intent HTTP/1.1\r\nX-Slow: " + b"a" * 100:
                sock.sendall(bytes([byte]))
                time.sleep(0.3)
        except OSError:
            pass  # the server closed the connection
        finally:
            sock.close()
        assert time.monotonic() - started < 4


def test_a_request_line_eventlet_cannot_parse_gets_an_http_status(server: ApiServer) -> None:
    """A request line with one word too few (read as HTTP/0.9) was answered with bare HTML and
    no status line; it is a JSON 400 like every other malformed request."""
    with socket.create_connection(("127.0.0.1", server.api_port), timeout=10) as sock:
        sock.sendall(b"\t /v1/intent HTTP/1.1\r\nHost: x\r\n\r\n")
        data = sock.recv(65536)
    assert data.startswith(b"HTTP/1.1 400 "), data[:200]
    assert json.loads(data.partition(b"\r\n\r\n")[2])["error"]["type"] == "BadRequest"


def test_concurrent_reads_and_writes_keep_their_guarantees(tmp_path: Path) -> None:
    """What held before the hardening and must still: 200 concurrent GETs all answered 200,
    20 concurrent updates (one token) serialized into consecutive revisions."""
    import concurrent.futures
    import copy

    import yaml

    base = yaml.safe_load(LEAF_SPINE.read_text())

    def update(n: int) -> int:
        doc = copy.deepcopy(base)
        doc["tenants"][0]["policies"][0]["services"][0]["port"] = 20_000 + n
        return srv.call("PUT", "/v1/intent", doc, timeout=120).status

    with running(tmp_path) as srv:
        assert srv.call("PUT", "/v1/intent", base, timeout=120).status == 200
        with concurrent.futures.ThreadPoolExecutor(200) as pool:
            reads = list(pool.map(lambda _: srv.call("GET", "/v1/intent", role="auditor").status, range(200)))
        assert reads == [200] * 200
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            writes = list(pool.map(update, range(20)))
        assert writes == [200] * 20
        revisions = srv.call("GET", "/v1/revisions", role="auditor").json()
        assert [r["id"] for r in revisions["revisions"]] == list(range(21, 0, -1))
        assert srv.call("GET", "/v1/audit?verify=true&limit=1", role="auditor").json()["chain_problems"] == []


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"Transfer-Encoding: chunked\r\n\r\n",  # no chunk at all (Hypothesis found this 500)
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",  # a chunk size that is not hex
        b"Content-Length: 100\r\n\r\n{",  # fewer bytes than announced, then the client stops
    ],
)
def test_a_body_that_cannot_be_read_is_a_4xx(server: ApiServer, request_bytes: bytes) -> None:
    head = (
        b"PUT /v1/intent?dry_run=true HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer " + server.tokens["admin"].encode() + b"\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.api_port), timeout=60) as sock:
        sock.sendall(head + request_bytes)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    assert status in (400, 408), data[:300]
    assert b"Traceback" not in data
