"""The one module that imports the OpenFlow framework (os-ken, or classic Ryu).

Everything else in :mod:`segctl.controller` imports ``app_manager``, ``ofp_event``,
``set_ev_cls``, the dispatchers, the OpenFlow 1.3/1.4 protocol modules and ``hub``
from here, so the app reads as ordinary Ryu code and classic ``ryu`` can be dropped
in where it still runs.

os-ken 4.x defaults to a *native* (thread) hub that has no ``WSGIServer`` and cannot
kill threads; segctl needs the eventlet hub (the REST API shares the controller's
hub), so ``OSKEN_HUB_TYPE=eventlet`` is set before os-ken is first imported. Import
this module before anything else that imports os-ken.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

__all__ = [
    "CONFIG_DISPATCHER",
    "DEAD_DISPATCHER",
    "FRAMEWORK",
    "MAIN_DISPATCHER",
    "AppManager",
    "ProtocolDesc",
    "RyuApp",
    "app_manager",
    "cfg",
    "hub",
    "nicira_ext",
    "ofctl_api",
    "ofctl_exception",
    "ofp_event",
    "ofproto_v1_3",
    "ofproto_v1_3_parser",
    "ofproto_v1_4",
    "ofproto_v1_4_parser",
    "set_ev_cls",
]

os.environ.setdefault("OSKEN_HUB_TYPE", "eventlet")
# eventlet says it is deprecated on import; os-ken's hub needs it all the same.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated", category=Warning)

FRAMEWORK: str
try:
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
except ImportError:  # pragma: no cover - classic Ryu where it still runs (Python < 3.10)
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

AppManager: Any = app_manager.AppManager
