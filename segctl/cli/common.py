"""Helpers shared by every ``segctl`` command: exit codes, ``--output``, errors, tables.

A command handler takes the parsed arguments and returns an exit code. It raises
:class:`~segctl.errors.SegctlError` for bad input; :func:`run_handler` turns that into
one clean line per problem on stderr (and a JSON error document on stdout with
``--output json``) and exit code 2 — never a traceback. Other exceptions are bugs and
are not caught.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from segctl.errors import IntentError, Problem, SegctlError

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_OK",
    "EXIT_VIOLATION",
    "OUTPUT_FORMATS",
    "Handler",
    "add_output_option",
    "error_document",
    "format_table",
    "print_json",
    "run_handler",
]

EXIT_OK = 0
EXIT_VIOLATION = 1
EXIT_BAD_INPUT = 2
OUTPUT_FORMATS = ("text", "json")

Handler = Callable[[argparse.Namespace], int]


def add_output_option(parser: argparse.ArgumentParser) -> None:
    """Add ``-o/--output text|json`` (default text)."""
    parser.add_argument(
        "-o",
        "--output",
        choices=OUTPUT_FORMATS,
        default="text",
        help="output format (default: text)",
    )


def print_json(data: Any, *, file: TextIO | None = None) -> None:
    """Print ``data`` as indented JSON (a stable, machine-readable form)."""
    print(json.dumps(data, indent=2, default=str), file=file or sys.stdout)


def _problems_of(exc: SegctlError) -> list[Problem]:
    if isinstance(exc, IntentError):
        return list(exc.problems)
    return [Problem("", str(exc) or type(exc).__name__)]


def error_document(exc: SegctlError) -> dict[str, Any]:
    """The JSON form of an error: its class and every problem."""
    return {
        "error": {
            "type": type(exc).__name__,
            "problems": [p.to_json() for p in _problems_of(exc)],
        }
    }


def report_error(exc: SegctlError, *, output: str = "text") -> int:
    """Print ``exc`` as ``segctl: <problem>`` lines on stderr (plus JSON on stdout); return 2."""
    for problem in _problems_of(exc):
        print(f"segctl: {problem}", file=sys.stderr)
    if output == "json":
        print_json(error_document(exc))
    return EXIT_BAD_INPUT


def run_handler(handler: Handler, args: argparse.Namespace) -> int:
    """Run a command handler, turning segctl errors into exit code 2 with clean messages."""
    try:
        return handler(args)
    except SegctlError as exc:
        return report_error(exc, output=getattr(args, "output", "text"))
    except KeyboardInterrupt:
        print("segctl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `segctl show ... | head`: the reader left; exit quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, indent: str = "") -> str:
    """Left-aligned columns separated by two spaces; ``None`` prints as ``-``."""
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(indent + line for line in lines)
