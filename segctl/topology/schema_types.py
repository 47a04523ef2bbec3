"""The intent's basic field types: names, MAC addresses, datapath ids, the ``switch:port``
text forms, and the strict base model every intent model derives from (part of
:mod:`segctl.topology.schema`)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
#: A selector's name may carry a ``tenant/`` prefix so that validation can say why a
#: policy cannot name another tenant's objects (instead of a pattern error).
SELECTOR_NAME_PATTERN = r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,31}/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"
SelectorName = Annotated[str, Field(pattern=SELECTOR_NAME_PATTERN)]
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
MAX_OF_PORT = 0xFF00  # OFPP_MAX: higher numbers are reserved ports
#: The most prefixes one external peer's ``except`` may list.
MAX_EXCEPT = 64


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _parse_mac(value: object) -> str:
    if not isinstance(value, str) or not _MAC_RE.match(value):
        raise ValueError(f"{value!r} is not a MAC address (expected aa:bb:cc:dd:ee:ff)")
    mac = value.lower()
    if int(mac[:2], 16) & 1:
        raise ValueError(f"{value} is a multicast MAC address; an endpoint needs a unicast one")
    if mac == "00:00:00:00:00:00":
        raise ValueError("00:00:00:00:00:00 is not a usable MAC address")
    return mac


MacAddress = Annotated[
    str,
    BeforeValidator(_parse_mac),
    WithJsonSchema(
        {"type": "string", "pattern": _MAC_RE.pattern, "description": "unicast MAC aa:bb:cc:dd:ee:ff"}
    ),
]


def _parse_dpid(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("a datapath id is an integer, a hex string or aa:bb:..:hh")
    if isinstance(value, int):
        dpid = value
    elif isinstance(value, str):
        text = value.strip().lower()
        try:
            dpid = int(text.replace(":", ""), 16) if ":" in text else int(text, 0)
        except ValueError:
            raise ValueError(f"{value!r} is not a datapath id") from None
    else:
        raise ValueError(f"{value!r} is not a datapath id")
    if not 1 <= dpid < 2**64:
        raise ValueError(f"datapath id {value} is out of range 1..2^64-1")
    return dpid


Dpid = Annotated[
    int,
    BeforeValidator(_parse_dpid),
    PlainSerializer(lambda v: f"{v:#018x}"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {
                    "type": "string",
                    "pattern": r"^\s*(0[xX][0-9a-fA-F]+|[0-9]+|[0-9a-fA-F]{1,2}(:[0-9a-fA-F]{1,2}){1,7})\s*$",
                },
            ],
            "description": "datapath id: integer, hex string 0x... or aa:bb:..:hh",
        }
    ),
]

#: JSON Schema of the ``switch:port`` text form (editors accept what the loader accepts).
_SWITCH_PORT_TEXT = r"^\s*[A-Za-z0-9][A-Za-z0-9_.-]{0,31}\s*:\s*[0-9]+\s*$"
_LINK_TEXT = (
    r"^\s*[A-Za-z0-9][A-Za-z0-9_.-]{0,31}\s*:\s*[0-9]+\s*<->"
    r"\s*[A-Za-z0-9][A-Za-z0-9_.-]{0,31}\s*:\s*[0-9]+\s*$"
)


def _or_text(pattern: str, example: str) -> Any:
    """``json_schema_extra`` hook: the object form, or a string of the short form."""

    def extra(schema: dict[str, Any]) -> None:
        obj = dict(schema)
        title = obj.pop("title", None)
        description = obj.pop("description", None)
        schema.clear()
        if title:
            schema["title"] = title
        if description:
            schema["description"] = description
        schema["anyOf"] = [{"type": "string", "pattern": pattern, "examples": [example]}, obj]

    return extra


def _not_bool(value: Any) -> Any:
    """YAML's ``yes``/``true`` is not ICMP type 1."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number (0-255)")
    return value
