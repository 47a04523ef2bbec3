"""segctl's controller app for Ryu's own manager (classic Ryu, ``.venv-ryu``)::

    SEGCTL_INTENT=intent.yaml python -m segctl.cli.ryu_manager --ofp-tcp-listen-port 6653

runs Ryu's ``ryu-manager`` (``ryu.cmd.manager.main``, every ``ryu-manager`` option) with
this app. On Python 3.11 the ``ryu-manager`` script itself cannot start: Ryu 4.34 needs
eventlet >= 0.33 there, which no longer has the ``eventlet.wsgi.ALREADY_HANDLED`` that
``ryu-manager`` imports first thing; this entry puts it back (through
:mod:`segctl.controller.framework`) before Ryu's manager loads. Where ``ryu-manager``
runs as is (an older Python with Ryu's own eventlet), ``SEGCTL_INTENT=intent.yaml
ryu-manager segctl.cli.ryu_manager`` is the same.

The manager loads :class:`SegctlManagerApp` (and, through ``_REQUIRED_APP``, the
request/reply service it needs); once started, the app builds the controller service from
the intent in ``SEGCTL_INTENT`` exactly as ``segctl controller run --intent`` does (the
intent is validated, compiled and proved, and every switch that connects gets its proven
rules in one bundle). What ``ryu-manager`` does not offer stays with ``segctl controller
run``: the REST API and its store, the periodic audit, SIGHUP reload. Not a command module
(``segctl.cli`` skips it): importing it imports the OpenFlow framework.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segctl.cli.common import report_error
from segctl.controller.app import SegctlApp
from segctl.controller.framework import FRAMEWORK, OFCTL_SERVICE_APP
from segctl.controller.runner import Started
from segctl.errors import SegctlError

__all__ = ["INTENT_VARIABLE", "SegctlManagerApp", "main"]

#: The environment variable naming the intent file.
INTENT_VARIABLE = "SEGCTL_INTENT"
#: Loaded by ``ryu-manager`` with this module: the app's request/reply service.
_REQUIRED_APP = [OFCTL_SERVICE_APP]


class SegctlManagerApp(SegctlApp):  # type: ignore[misc]
    """:class:`~segctl.controller.app.SegctlApp` that builds its own service from ``SEGCTL_INTENT``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from segctl.cli.controller import _ServiceFactory

        intent = os.environ.get(INTENT_VARIABLE, "")
        if not intent:
            raise SystemExit(f"segctl: set {INTENT_VARIABLE}=<intent file> for ryu-manager")
        super().__init__(*args, **kwargs)
        self._factory = _ServiceFactory(intent=Path(intent), store=None)
        try:
            self._factory.check()  # a bad intent stops ryu-manager before the app serves anything
        except SegctlError as exc:
            report_error(exc)
            raise SystemExit(2) from None

    def start(self) -> Any:
        thread = super().start()
        hooks, _ = self._factory(Started(self))
        self.attach(hooks)
        self.logger.info("segctl app (%s) serving %s", FRAMEWORK, self._factory.intent)
        return thread


def main(argv: Sequence[str] | None = None) -> None:
    """Ryu's ``ryu-manager`` with ``argv`` (its options) and this app."""
    if FRAMEWORK != "ryu":
        raise SystemExit(
            f"segctl: ryu-manager needs classic Ryu; this Python has {FRAMEWORK} (see .venv-ryu)"
        )
    from ryu.cmd import manager

    args = list(sys.argv[1:] if argv is None else argv)
    manager.main(args=[*args, "segctl.cli.ryu_manager"], prog="ryu-manager")


if __name__ == "__main__":
    main()
