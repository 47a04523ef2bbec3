"""Hostile requests on every REST route: never a 500, never a traceback, always a JSON error.

Every route of :data:`segctl.controller.api.ROUTES` gets every query parameter and every
path parameter with every value of :data:`HOSTILE` (huge numbers, non-ASCII digits, signs,
exponents, control characters...), systematically; then Hypothesis draws combinations of
path parameters, query strings and bodies (other types, broken JSON, intent documents with
one value replaced). Every answer must be a status the API documents, with a JSON body; an
error must carry ``{"error": {"type", "message"}}``.
"""

from __future__ import annotations

import copy
import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.api_env import LEAF_SPINE, Env
from support.documents import at as _at
from support.documents import places as _places

from segctl.controller.api import ROUTES

STATUSES = {200, 400, 401, 403, 404, 405, 409, 413, 415, 422, 503}
QUERY_NAMES = ["dry_run", "kind", "limit", "before", "after", "revision", "actor", "action", "live", "x"]

#: Values a client should never send as a number, a name or a flag.
HOSTILE = ["", "0", "-1", "-0", "1e3", "0x10", " 1", "1 ", "1.5", "²", "١٢", "9" * 30, "9" * 5000, "NaN",
           "true", "null", "%00", "\x00", "../../etc", "a" * 300, "gate\n", "' OR 1=1 --"]  # fmt: skip
numbers = st.one_of(st.integers(min_value=-(10**30), max_value=10**30).map(str), st.sampled_from(HOSTILE))
texts = st.one_of(numbers, st.text(max_size=40), st.sampled_from(["gate", "live", "audit", "leaf1", "acme"]))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


PLACES = [p for p in _places(LEAF_SPINE) if p]  # every key and index of the intent


@st.composite
def mutated_intent(draw: st.DrawFn) -> Any:
    """The leaf-spine intent with one value replaced by an arbitrary JSON value."""
    doc = copy.deepcopy(LEAF_SPINE)
    place = draw(st.sampled_from(PLACES))
    _at(doc, place[:-1])[place[-1]] = draw(json_values)
    return doc


bodies = st.one_of(
    st.none(),
    st.binary(max_size=64),
    st.text(max_size=64).map(str.encode),
    json_values.map(lambda v: json.dumps(v).encode()),
    mutated_intent().map(lambda v: json.dumps(v).encode()),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, bytes | None]:
    route = draw(st.sampled_from(ROUTES))
    path = route.path
    for name in ("name", "id"):
        if "{" + name + "}" in path:
            value = draw(texts)
            path = path.replace("{" + name + "}", urllib.parse.quote(value, safe="") or "x")
    query = draw(st.dictionaries(st.sampled_from(QUERY_NAMES), texts, max_size=3))
    if query:
        path += "?" + urllib.parse.urlencode(query)
    method = draw(st.sampled_from([route.method, route.method, "DELETE", "PATCH"]))
    return method, path, draw(bodies)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Env:
    env = Env(Path(tmp_path_factory.mktemp("fuzz")))
    assert env.call("PUT", "/v1/intent", body=LEAF_SPINE).status_code == 200
    return env


def _check(response: Any, what: object) -> None:
    assert response.status_code in STATUSES, (what, response.status_code, response.text[:400])
    if response.content_type == "application/json":
        document = json.loads(response.text)
        if response.status_code >= 400:
            error = document["error"]
            assert error["type"] and error["message"], (what, document)
            assert "Traceback" not in error["message"]
    else:
        assert response.status_code == 200 and response.content_type.startswith("text/plain"), what


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_every_parameter_with_every_hostile_value(api: Env, route: Any) -> None:
    """Each query parameter, and each path parameter, alone with each hostile value (a
    dry run where the route takes one, so that nothing is changed)."""
    names = ("name", "id")
    for value in HOSTILE:
        quoted = urllib.parse.quote(value, safe="") or "x"
        path = route.path
        for name in names:
            path = path.replace("{" + name + "}", quoted)
        _check(api.call(route.method, path + "?dry_run=true"), (route.method, path))
        concrete = route.path.replace("{name}", "acme").replace("{id}", "1")
        for query in QUERY_NAMES:
            if query == "dry_run" or route.method != "GET":
                continue  # writes: dry_run below; other parameters are read by GETs only
            url = f"{concrete}?{urllib.parse.urlencode({query: value})}"
            _check(api.call(route.method, url), url)
    concrete = route.path.replace("{name}", "acme").replace("{id}", "1")
    for value in HOSTILE:  # without a body a PUT is refused; reconcile and rollback to 1 are harmless
        url = f"{concrete}?{urllib.parse.urlencode({'dry_run': value})}"
        _check(api.call(route.method, url), url)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=requests(), role=st.sampled_from(["admin", "auditor", "acme-admin"]))
def test_hostile_requests_get_a_documented_status_and_a_json_error(
    api: Env, request: tuple[str, str, bytes | None], role: str
) -> None:
    method, path, body = request
    response = api.call(method, path, role, body.decode("latin-1") if body is not None else None)
    _check(response, (method, path, body))


def test_the_api_still_serves_after_the_fuzzing(api: Env) -> None:
    assert api.call("GET", "/v1/intent").status_code == 200
    assert api.call("GET", "/v1/revisions", "auditor").status_code == 200
