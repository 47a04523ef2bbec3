"""The one error tree of segctl.

::

    SegctlError                     base of every error segctl raises on purpose
    ├── IntentError                 the intent is invalid (exit code 2); carries Problems
    ├── FlowSyntaxError             a flow table text (ovs-ofctl form) cannot be read
    ├── UnsupportedFlowError        a match field or action the verifier does not model
    ├── CompileError                the compiler cannot produce safe rules for a valid intent
    ├── SwitchError                 talking to a switch or OVS failed
    └── LabDependencyError          a lab command runs without the ``[lab]`` extra installed

User input is hostile: every error names the place (a path into the document, a file
and line, a switch and flow) and the reason. Nothing is ever pushed after an error.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CompileError",
    "FlowSyntaxError",
    "IntentError",
    "LabDependencyError",
    "Problem",
    "SegctlError",
    "SwitchError",
    "UnsupportedFlowError",
]


class SegctlError(Exception):
    """Base class of every error segctl raises on purpose."""


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with an intent: where it is and why it is wrong.

    ``location`` is a path into the intent document such as
    ``tenants[acme].endpoints[web1].ip``; ``source`` is ``file:line`` when known.
    """

    location: str
    message: str
    source: str = ""

    def __str__(self) -> str:
        prefix = f"{self.source}: " if self.source else ""
        where = f"{self.location}: " if self.location else ""
        return f"{prefix}{where}{self.message}"

    def to_json(self) -> dict[str, str]:
        return {"location": self.location, "message": self.message, "source": self.source}


class IntentError(SegctlError):
    """The intent is invalid; ``problems`` lists every problem found, each with its place."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(set(problems), key=_problem_order)
        super().__init__("\n".join(str(p) for p in self.problems))


def _problem_order(problem: Problem) -> tuple[str, int, str, str]:
    """Sort by file, then line as a number (``f:9`` before ``f:10``), then location."""
    head, sep, tail = problem.source.rpartition(":")
    if sep and tail.isdigit():
        return (head, int(tail), problem.location, problem.message)
    return (problem.source, 0, problem.location, problem.message)


class FlowSyntaxError(SegctlError):
    """A line of a flow table (ovs-ofctl syntax) cannot be parsed."""


class UnsupportedFlowError(SegctlError):
    """A flow uses a match field or action that the verifier does not model."""


class CompileError(SegctlError):
    """The compiler refused to produce rules (for example overlapping conjunctions)."""


class SwitchError(SegctlError):
    """A switch or OVS command failed."""


class LabDependencyError(SegctlError):
    """A lab command (Mininet scenarios, the test bed) needs modules of the ``[lab]`` extra."""

    #: Modules only the lab side imports: ``pip install 'segctl[lab]'`` brings them.
    MODULES = frozenset({"mininet", "pyroute2", "scapy"})

    @classmethod
    def missing(cls, exc: ModuleNotFoundError, what: str) -> LabDependencyError | None:
        """The error to raise for ``exc`` while running ``what``, or None when the missing
        module is not a lab one (a real bug: let it surface)."""
        root = (exc.name or "").partition(".")[0]
        if root not in cls.MODULES:
            return None
        return cls(f"{what} needs the lab extra ({root} is not installed): pip install 'segctl[lab]'")
