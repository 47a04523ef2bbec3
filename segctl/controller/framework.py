"""The one module that imports the OpenFlow framework (os-ken, or classic Ryu).

Everything else in :mod:`segctl.controller` imports ``app_manager``, ``ofp_event``,
``set_ev_cls``, the dispatchers, the OpenFlow 1.3/1.4 protocol modules and ``hub``
from here, so the app reads as ordinary Ryu code and classic ``ryu`` can be dropped
in where it still runs.

os-ken 4.x defaults to a *native* (thread) hub that has no ``WSGIServer`` and cannot
kill threads; segctl needs the eventlet hub (the REST API shares the controller's
hub), so ``OSKEN_HUB_TYPE=eventlet`` is set before os-ken is first imported. Import
this module before anything else that imports os-ken.

``SEGCTL_FRAMEWORK`` chooses: ``os-ken``, ``ryu``, or unset (os-ken, else ryu). Classic
Ryu 4.34 runs on Python 3.11 with eventlet >= 0.33 once ``eventlet.wsgi.ALREADY_HANDLED``
(removed from eventlet, still imported by Ryu) is put back before Ryu is imported; the
controller's OVS tests run with it (``tests/ovs/test_ryu.py``, ``scripts/ryu-venv.sh``).
"""

from __future__ import annotations

import importlib
import os
import warnings
from typing import Any

__all__ = [
    "CHOICE",
    "CONFIG_DISPATCHER",
    "DEAD_DISPATCHER",
    "FRAMEWORK",
    "MAIN_DISPATCHER",
    "OFCTL_SERVICE_APP",
    "PACKAGE",
    "AppManager",
    "ProtocolDesc",
    "RyuApp",
    "app_manager",
    "cfg",
    "eventlet",
    "eventlet_wsgi",
    "green_ssl",
    "hub",
    "nicira_ext",
    "ofctl_api",
    "ofctl_exception",
    "ofp_event",
    "ofproto_v1_3",
    "ofproto_v1_3_parser",
    "ofproto_v1_4",
    "ofproto_v1_4_parser",
    "register_controller_options",
    "set_ev_cls",
]

os.environ.setdefault("OSKEN_HUB_TYPE", "eventlet")
# eventlet says it is deprecated on import; os-ken's hub needs it all the same.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated", category=Warning)

FRAMEWORK: str
#: ``os-ken``, ``ryu``, or "" for os-ken with a fallback to ryu.
CHOICE = os.environ.get("SEGCTL_FRAMEWORK", "").strip().lower()
if CHOICE not in ("", "os-ken", "ryu"):
    raise ImportError(f"SEGCTL_FRAMEWORK={CHOICE}: choose os-ken or ryu")


def _restore_already_handled() -> None:
    """Ryu 4.34's ``app.wsgi`` imports ``eventlet.wsgi.ALREADY_HANDLED``, a sentinel newer
    eventlet dropped; segctl never returns it (its REST API is plain WebOb on the hub's
    ``WSGIServer``), so any unique object lets Ryu import."""
    import eventlet.wsgi

    if not hasattr(eventlet.wsgi, "ALREADY_HANDLED"):
        eventlet.wsgi.ALREADY_HANDLED = object()  # type: ignore[attr-defined]


try:
    if CHOICE == "ryu":
        raise ImportError("SEGCTL_FRAMEWORK=ryu")
    from os_ken import cfg
    from os_ken.app.ofctl import api as ofctl_api
    from os_ken.app.ofctl import exception as ofctl_exception
    from os_ken.base import app_manager
    from os_ken.controller import ofp_event
    from os_ken.controller.handler import (
        CONFIG_DISPATCHER,
        DEAD_DISPATCHER,
        MAIN_DISPATCHER,
        set_ev_cls,
    )
    from os_ken.lib import hub
    from os_ken.ofproto import (
        nicira_ext,
        ofproto_v1_3,
        ofproto_v1_3_parser,
        ofproto_v1_4,
        ofproto_v1_4_parser,
    )
    from os_ken.ofproto.ofproto_protocol import ProtocolDesc

    RyuApp: Any = app_manager.OSKenApp
    FRAMEWORK = "os-ken"
except ImportError:  # classic Ryu: tests/ovs/test_ryu.py runs the controller's OVS tests with it
    if CHOICE == "os-ken":
        raise
    _restore_already_handled()
    from ryu import cfg  # type: ignore[no-redef]
    from ryu.app.ofctl import api as ofctl_api  # type: ignore[no-redef]
    from ryu.app.ofctl import exception as ofctl_exception  # type: ignore[no-redef]
    from ryu.base import app_manager  # type: ignore[no-redef]
    from ryu.controller import ofp_event  # type: ignore[no-redef]
    from ryu.controller.handler import (  # type: ignore[no-redef]
        CONFIG_DISPATCHER,
        DEAD_DISPATCHER,
        MAIN_DISPATCHER,
        set_ev_cls,
    )
    from ryu.lib import hub  # type: ignore[no-redef]
    from ryu.ofproto import (  # type: ignore[no-redef]
        nicira_ext,
        ofproto_v1_3,
        ofproto_v1_3_parser,
        ofproto_v1_4,
        ofproto_v1_4_parser,
    )
    from ryu.ofproto.ofproto_protocol import ProtocolDesc  # type: ignore[no-redef]

    RyuApp = app_manager.RyuApp
    FRAMEWORK = "ryu"
    if not hasattr(ofctl_exception, "InvalidMessage"):
        # os-ken's send_msg raises it for a message it cannot serialize; Ryu's never does.
        # Define it so that code catching it reads the same on both.
        class InvalidMessage(ofctl_exception.UnexpectedMultiReply.__base__):  # type: ignore[name-defined,misc]
            message = "Invalid message %(result)s"

        ofctl_exception.InvalidMessage = InvalidMessage

AppManager: Any = app_manager.AppManager
#: The framework's package, its request/reply service app, and the oslo.config project name.
PACKAGE = "ryu" if FRAMEWORK == "ryu" else "os_ken"
OFCTL_SERVICE_APP = f"{PACKAGE}.app.ofctl.service"


def register_controller_options() -> Any:
    """Import the framework's OpenFlow controller module, which registers the ``ofp_*``
    options; return it."""
    return importlib.import_module(f"{PACKAGE}.controller.controller")


# The eventlet pieces the REST API's server is made of (segctl.controller.http), imported
# here, after the deprecation warning is silenced.
import eventlet  # noqa: E402
import eventlet.wsgi as eventlet_wsgi  # noqa: E402
from eventlet.green import ssl as green_ssl  # noqa: E402
