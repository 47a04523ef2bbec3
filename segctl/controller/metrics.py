"""Counters, gauges and summaries rendered in the Prometheus text exposition format.

No dependency: a :class:`Registry` holds metric families by name; each family keeps
one value per label set. :meth:`Registry.render` writes ``# HELP``/``# TYPE`` lines and
samples sorted by name and labels, so the output is stable.

>>> reg = Registry()
>>> pushes = reg.counter("segctl_pushes_total", "Pushes to switches.", ("switch", "result"))
>>> pushes.inc(switch="leaf1", result="ok")
>>> print(reg.render().strip())
# HELP segctl_pushes_total Pushes to switches.
# TYPE segctl_pushes_total counter
segctl_pushes_total{result="ok",switch="leaf1"} 1
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import TypeVar

__all__ = ["ControllerMetrics", "Counter", "Gauge", "ObservedCounter", "Registry", "Summary", "format_value"]

LabelKey = tuple[tuple[str, str], ...]
_F = TypeVar("_F", bound="_Family")


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it (integers without a fraction)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels_text(key: LabelKey) -> str:
    if not key:
        return ""
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in key) + "}"


class _Family:
    kind = "untyped"

    def __init__(self, name: str, help: str, labels: Sequence[str], lock: threading.Lock) -> None:
        self.name = name
        self.help = help
        self.labels = tuple(labels)
        self._lock = lock
        self._values: dict[LabelKey, float] = {}

    def _key(self, labels: dict[str, str]) -> LabelKey:
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, got {tuple(labels)}")
        return tuple(sorted((k, str(v)) for k, v in labels.items()))

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def samples(self) -> list[tuple[str, LabelKey, float]]:
        with self._lock:
            return [(self.name, key, value) for key, value in sorted(self._values.items())]


class Counter(_Family):
    """A value that only goes up."""

    kind = "counter"

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount


class Gauge(_Family):
    """A value that is set."""

    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def remove(self, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values.pop(key, None)


class ObservedCounter(_Family):
    """A counter kept by someone else (a switch's flow counters), published whole.

    Its values are replaced together by :meth:`publish`; like any counter read from a
    device, a value may restart from zero when the device does (a rule re-added).
    """

    kind = "counter"

    def publish(self, values: Mapping[LabelKey, float]) -> None:
        """Replace every sample; keys are label tuples as :meth:`labels_key` makes them."""
        with self._lock:
            self._values = dict(values)

    def labels_key(self, **labels: str) -> LabelKey:
        return self._key(labels)


class Summary(_Family):
    """Observations as ``_count`` and ``_sum`` (no quantiles)."""

    kind = "summary"

    def __init__(self, name: str, help: str, labels: Sequence[str], lock: threading.Lock) -> None:
        super().__init__(name, help, labels, lock)
        self._counts: dict[LabelKey, float] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + value
            self._counts[key] = self._counts.get(key, 0.0) + 1

    def count(self, **labels: str) -> float:
        with self._lock:
            return self._counts.get(self._key(labels), 0.0)

    def samples(self) -> list[tuple[str, LabelKey, float]]:
        with self._lock:
            out = []
            for key in sorted(self._values):
                out.append((f"{self.name}_count", key, self._counts[key]))
                out.append((f"{self.name}_sum", key, self._values[key]))
            return out


class Registry:
    """Metric families by name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: dict[str, _Family] = {}

    def counter(self, name: str, help: str, labels: Sequence[str] = ()) -> Counter:
        return self._add(Counter(name, help, labels, self._lock))

    def gauge(self, name: str, help: str, labels: Sequence[str] = ()) -> Gauge:
        return self._add(Gauge(name, help, labels, self._lock))

    def observed_counter(self, name: str, help: str, labels: Sequence[str] = ()) -> ObservedCounter:
        return self._add(ObservedCounter(name, help, labels, self._lock))

    def summary(self, name: str, help: str, labels: Sequence[str] = ()) -> Summary:
        return self._add(Summary(name, help, labels, self._lock))

    def _add(self, family: _F) -> _F:
        if family.name in self._families:
            raise ValueError(f"metric {family.name} is already registered")
        self._families[family.name] = family
        return family

    def render(self) -> str:
        """The whole registry in Prometheus text format (version 0.0.4)."""
        lines: list[str] = []
        for name in sorted(self._families):
            family = self._families[name]
            lines.append(f"# HELP {name} {_escape(family.help)}")
            lines.append(f"# TYPE {name} {family.kind}")
            for sample, key, value in family.samples():
                lines.append(f"{sample}{_labels_text(key)} {format_value(value)}")
        return "\n".join(lines) + "\n"


class ControllerMetrics:
    """The metric families the controller service and the API update."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or Registry()
        reg = self.registry
        self.rules = reg.gauge("segctl_rules", "Desired OpenFlow rules per switch.", ("switch",))
        self.pushes = reg.counter(
            "segctl_pushes_total", "Pushes (bundles) to switches.", ("switch", "result")
        )
        self.drift_repairs = reg.counter(
            "segctl_drift_repairs_total", "Flows repaired after drift (added or removed).", ("switch",)
        )
        self.verification_seconds = reg.summary(
            "segctl_verification_seconds", "Time spent verifying flow tables.", ("stage",)
        )
        self.verification_pass = reg.gauge(
            "segctl_verification_pass", "Last verification verdict (1 pass, 0 fail).", ("stage",)
        )
        self.proofs_read_back = reg.counter(
            "segctl_proofs_read_back_total", "Verifications answered by a proof read back from the store."
        )
        self.verifier_cold = reg.gauge(
            "segctl_verifier_cold", "1 while a proof read back from the store waits for a warm-up."
        )
        self.warm_ups = reg.counter(
            "segctl_verifier_warm_ups_total", "Background warm-up proofs by result.", ("result",)
        )
        self.revision = reg.gauge("segctl_intent_revision", "The current intent revision.")
        self.connected = reg.gauge("segctl_switches_connected", "Switches connected now.")
        self.rejected = reg.counter("segctl_changes_rejected_total", "Intent changes rejected.", ("reason",))
        self.api_connections_refused = reg.counter(
            "segctl_api_connections_refused_total",
            "REST API connections answered 503 because the connection cap was reached.",
        )
        self.api_requests = reg.counter(
            "segctl_api_requests_total",
            "REST API requests by route and status.",
            ("method", "route", "status"),
        )

        self.policy_packets = reg.observed_counter(
            "segctl_policy_packets_total",
            "Packets decided by each policy (policy_src rules' flow counters, read at each reconciliation).",
            ("tenant", "policy", "verdict"),
        )
        self.policy_bytes = reg.observed_counter(
            "segctl_policy_bytes_total",
            "Bytes decided by each policy (policy_src rules' flow counters, read at each reconciliation).",
            ("tenant", "policy", "verdict"),
        )

    def render(self) -> str:
        return self.registry.render()
