"""The REST API of a real controller process (``segctl controller run``), no switches.

What only the process shows: its event loop keeps answering (a ``/metrics`` poll within
100 ms) while hostile requests are handled, and the HTTP server's own limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.api_server import LEAF_SPINE, ApiServer, Poller, running

pytestmark = pytest.mark.filterwarnings("ignore:Using fork:DeprecationWarning")

#: A concurrent GET /metrics must be answered within this while a hostile request is handled.
POLL_BOUND_S = 0.100


def alias_bomb(levels: int = 6) -> str:
    """The 341-byte body of issue 15: ten aliases of the level below, per level (10**7 leaves)."""
    lines = ["l0: &l0 [x,x,x,x,x,x,x,x,x,x]"]
    lines += [f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with running(Path(tmp_path_factory.mktemp("api-server"))) as srv:
        reply = srv.call("PUT", "/v1/intent", LEAF_SPINE.read_text(), content_type="application/yaml", timeout=120)
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
]


def test_hostile_bodies_do_not_stop_the_event_loop(server: ApiServer) -> None:
    """Each hostile body is refused (4xx, within seconds) while a concurrent GET /metrics is
    answered within 100 ms all along; nothing changes. Before the bodies were parsed off the
    event loop under a budget, the alias bomb alone stopped everything for 22 s (2.2 GB)."""
    before = _state(server)
    statuses = []
    with Poller(server) as poll:
        for role, path, body, content_type in HOSTILE:
            reply = server.call("PUT", path, body, role=role, content_type=content_type, timeout=120)
            statuses.append((path, content_type, len(body), reply.status, reply.seconds))
            assert 400 <= reply.status < 500, (body[:80], reply.status, reply.body[:300])
    print("\n".join(map(str, statuses)), f"\npoll: {len(poll.latencies)} answers, worst {poll.worst:.3f} s")
    assert not poll.failures, poll.failures[:5]
    assert len(poll.latencies) >= 20
    assert poll.worst < POLL_BOUND_S, f"GET /metrics took {poll.worst:.3f} s while hostile bodies were parsed"
    assert _state(server) == before
