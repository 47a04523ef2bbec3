"""An in-process API over the real controller service with a memory southbound (tests of the REST API)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import webob
import yaml

from segctl.controller.api import ApiApp
from segctl.controller.audit import AuditLog
from segctl.controller.auth import TokenStore
from segctl.controller.memory_southbound import MemorySouthbound
from segctl.controller.service import ControllerService
from segctl.controller.store import Database, Store
from support.service_doubles import compile_tables, verify_tables

ROOT = Path(__file__).resolve().parents[2]
LEAF_SPINE_TEXT = (ROOT / "examples/leaf-spine.yaml").read_text()
LEAF_SPINE = yaml.safe_load(LEAF_SPINE_TEXT)
SWITCHES = ["spine1", "spine2", "leaf1", "leaf2", "leaf3", "leaf4"]


class Env:
    def __init__(self, tmp_path: Path, compiler: Any = compile_tables) -> None:
        db = Database(tmp_path / "api.db")
        self.sb = MemorySouthbound(SWITCHES)
        self.service = ControllerService(Store(db), self.sb, verify_tables, AuditLog(db), compiler=compiler)
        self.tokens = TokenStore(db)
        self.app = ApiApp(self.service, self.tokens)
        self.token = {
            "admin": self.tokens.create("admin")[1],
            "auditor": self.tokens.create("auditor")[1],
            "acme-admin": self.tokens.create("tenant-admin", tenant="acme")[1],
            "bad": "sgt_0123abcd_" + "x" * 43,
        }

    def call(
        self, method: str, path: str, role: str | None = "admin", body: Any = None, content_type: str = ""
    ) -> webob.Response:
        request = webob.Request.blank(path, method=method)
        if role is not None:
            request.headers["Authorization"] = f"Bearer {self.token[role]}"
        if body is not None:
            request.body = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            request.content_type = content_type or "application/json"
        response: webob.Response = request.get_response(self.app)
        return response

    def fingerprint(self) -> Any:
        current = self.service.store.current()
        return (
            current and current.id,
            self.service.audit_log.head(),
            {n: frozenset(self.sb.flows(n)) for n in SWITCHES},
        )
