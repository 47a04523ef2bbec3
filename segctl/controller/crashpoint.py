"""Test-only: the controller kills itself (SIGKILL) at a named step of a change.

``SEGCTL_TEST_CRASH_AT=STEP[@N]`` in the controller's environment makes the N-th time (the
first by default) the process reaches ``STEP`` its last: it logs one line and sends itself
SIGKILL, as a power cut or the OOM killer would stop it. The crash-consistency tests
(``tests/ovs/test_controller_crash.py``) use it to stop a change at each of its steps and
check what a restarted controller makes of the store and the switches. Never set it
anywhere else. The steps of a change, in order:

============  ======================================================================
``compiled``  the change is compiled and diffed; nothing proven, written or pushed
``gated``     the gate proof passed; nothing written or pushed
``recorded``  the revision, its gate report and its audit entry are committed (one
              transaction, live verdict ``pending``); nothing pushed
``bundle``    in a push, a switch's bundle holds every add and delete, not committed
``pushed``    every connected switch took its diff; no live proof yet
``verified``  the live proof is done; its outcome is not recorded
============  ======================================================================
"""

from __future__ import annotations

import logging
import os
import signal

__all__ = ["ENV", "STEPS", "reached"]

ENV = "SEGCTL_TEST_CRASH_AT"
STEPS = ("compiled", "gated", "recorded", "bundle", "pushed", "verified")
LOG = logging.getLogger("segctl.controller.crashpoint")
_seen: dict[str, int] = {}


def reached(step: str) -> None:
    """Count ``step``; SIGKILL this process when it is the one ``SEGCTL_TEST_CRASH_AT`` names."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    name, _, nth = wanted.partition("@")
    if name != step:
        return
    _seen[step] = _seen.get(step, 0) + 1
    if _seen[step] == int(nth or "1"):
        LOG.critical("%s=%s: killing the controller at step %s", ENV, wanted, step)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
