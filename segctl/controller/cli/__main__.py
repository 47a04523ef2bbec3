"""``python -m segctl.controller.cli`` runs the ``segctl`` command line."""

from __future__ import annotations

from segctl.controller.cli import main

raise SystemExit(main())
