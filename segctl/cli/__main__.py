"""``python -m segctl.cli`` runs the ``segctl`` command line."""

from __future__ import annotations

from segctl.cli import main

raise SystemExit(main())
