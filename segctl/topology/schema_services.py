"""The intent's services: a protocol with ports or an ICMP type and code, and named service
sets (part of :mod:`segctl.topology.schema`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from segctl.topology.schema_types import Name, _not_bool, _Strict


class PortRange(_Strict):
    """An inclusive range of transport ports."""

    lo: int = Field(ge=1, le=65535)
    hi: int = Field(ge=1, le=65535)

    @model_validator(mode="after")
    def _ordered(self) -> PortRange:
        if self.lo > self.hi:
            raise ValueError(f"port range {self.lo}-{self.hi} is empty (start > end)")
        return self

    def __str__(self) -> str:
        return str(self.lo) if self.lo == self.hi else f"{self.lo}-{self.hi}"


def _parse_ports(value: Any) -> Any:
    """Accept 80, "80", "8000-8080" or a list of those; return a list of PortRange dicts."""
    items = value if isinstance(value, list) else [value]
    ranges: list[Any] = []
    for item in items:
        if isinstance(item, bool):
            raise ValueError(f"{item!r} is not a port")
        if isinstance(item, int):
            ranges.append({"lo": item, "hi": item})
        elif isinstance(item, str):
            lo, sep, hi = item.partition("-")
            if not lo.strip().isdigit() or (sep and not hi.strip().isdigit()):
                raise ValueError(f"{item!r} is not a port or a range like 8000-8080")
            ranges.append({"lo": int(lo), "hi": int(hi) if sep else int(lo)})
        else:
            ranges.append(item)
    if not ranges:
        raise ValueError("an empty port list allows nothing; leave ports out to allow all")
    return ranges


_PORT_ITEM: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": 65535},
        {"type": "string", "pattern": r"^\s*[0-9]+\s*(-\s*[0-9]+\s*)?$"},
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "lo": {"type": "integer", "minimum": 1, "maximum": 65535},
                "hi": {"type": "integer", "minimum": 1, "maximum": 65535},
            },
            "required": ["lo", "hi"],
        },
    ]
}
_PORTS_SCHEMA: dict[str, Any] = {
    "anyOf": [_PORT_ITEM, {"type": "array", "items": _PORT_ITEM, "minItems": 1}],
    "description": "destination ports: 80, '8000-8080', or a list of those",
}


def _service_schema(schema: dict[str, Any]) -> None:
    # `port` is an accepted spelling of `ports` (pydantic only lists the first alias).
    properties = schema.setdefault("properties", {})
    properties["ports"] = dict(_PORTS_SCHEMA)
    properties["port"] = dict(_PORTS_SCHEMA)
    # An ICMP code only means something within its type.
    schema["dependentRequired"] = {"code": ["type"]}


IcmpNumber = Annotated[int, Field(ge=0, le=255), BeforeValidator(_not_bool)]


def _lower(value: Any) -> Any:
    """``TCP`` is ``tcp``: protocol names are case-insensitive."""
    return value.strip().lower() if isinstance(value, str) else value


class Service(_Strict):
    """A protocol and optional destination ports (tcp/udp) or ICMP type and code (icmp,
    icmp6), or any. tcp, udp and any cover both IP families; icmp is ICMPv4 and icmp6 ICMPv6."""

    model_config = ConfigDict(json_schema_extra=_service_schema)

    proto: Annotated[
        Literal["tcp", "udp", "icmp", "icmp6", "any"],
        BeforeValidator(_lower),
        WithJsonSchema(
            {
                "type": "string",
                "pattern": r"^\s*([tT][cC][pP]|[uU][dD][pP]|[iI][cC][mM][pP]6?|[aA][nN][yY])\s*$",
                "description": "tcp, udp, icmp, icmp6 or any (case-insensitive)",
            }
        ),
    ]
    ports: Annotated[list[PortRange], BeforeValidator(_parse_ports)] | None = Field(
        default=None, validation_alias=AliasChoices("ports", "port")
    )

    type: IcmpNumber | None = Field(
        default=None, description="ICMP type (icmp or icmp6 only), e.g. 8 (icmp) or 128 (icmp6) echo request"
    )
    code: IcmpNumber | None = Field(default=None, description="ICMP code (icmp or icmp6, together with type)")

    @model_validator(mode="after")
    def _ports_need_transport(self) -> Service:
        if self.ports is not None and self.proto not in ("tcp", "udp"):
            raise ValueError(f"ports only apply to tcp or udp, not {self.proto}")
        return self

    @model_validator(mode="after")
    def _type_needs_icmp(self) -> Service:
        if self.type is not None and self.proto not in ("icmp", "icmp6"):
            raise ValueError(f"type only applies to icmp or icmp6, not {self.proto}")
        if self.code is not None and self.proto not in ("icmp", "icmp6"):
            raise ValueError(f"code only applies to icmp or icmp6, not {self.proto}")
        if self.code is not None and self.type is None:
            raise ValueError(
                f"code {self.code} needs a type (an ICMP code only means something within its type)"
            )
        return self

    def describe(self) -> str:
        """``tcp/80,443``, ``icmp``, ``icmp/type=8`` or ``icmp/type=3,code=4``."""
        if self.type is not None:
            code = "" if self.code is None else f",code={self.code}"
            return f"{self.proto}/type={self.type}{code}"
        if self.ports is None:
            return self.proto
        return f"{self.proto}/" + ",".join(str(r) for r in self.ports)


class ServiceSet(_Strict):
    """A named list of services, reused by policies and shared services (``service_sets``)."""

    name: Name
    services: list[Service] = Field(min_length=1)


def _services_given(owner: str, services: list[Service], sets: list[str]) -> None:
    if not services and not sets:
        raise ValueError(f"a {owner} allows at least one service: give services, service_sets or both")
