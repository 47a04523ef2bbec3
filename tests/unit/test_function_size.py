"""No function or method in segctl/ longer than :data:`MAX_LINES` lines (issue 13).

A function's length runs from its ``def`` line to its last line (decorators excluded, a
nested function counted in its parent too). :data:`LEFT_FOR_OTHERS` names the functions
still over the limit whose refactor belongs to another piece of work; an entry that is
gone or back under the limit fails too, so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 100
#: ``path:qualified name`` -> why it is still long (the properties registry of issue 13, point 4).
LEFT_FOR_OTHERS: dict[str, str] = {}


def function_lengths(root: Path) -> dict[str, int]:
    """``path:Class.method`` (or ``path:function``, nested ``outer.inner``) -> lines, for every
    function under ``root/segctl``."""
    out: dict[str, int] = {}

    def visit(node: ast.AST, path: str, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    out[f"{path}:{name}"] = (child.end_lineno or child.lineno) - child.lineno + 1
                visit(child, path, f"{name}.")
            else:
                visit(child, path, prefix)

    for file in sorted((root / "segctl").rglob("*.py")):
        visit(ast.parse(file.read_text(), filename=str(file)), file.relative_to(root).as_posix(), "")
    return out


def test_no_function_is_longer_than_the_limit() -> None:
    lengths = function_lengths(ROOT)
    too_long = {name: n for name, n in lengths.items() if n > MAX_LINES and name not in LEFT_FOR_OTHERS}
    assert not too_long, f"functions over {MAX_LINES} lines (split them): {too_long}"
    done = {name for name in LEFT_FOR_OTHERS if lengths.get(name, 0) <= MAX_LINES}
    assert not done, f"no longer over {MAX_LINES} lines, remove from LEFT_FOR_OTHERS: {sorted(done)}"


def test_the_walk_measures_functions_and_methods(tmp_path: Path) -> None:
    package = tmp_path / "segctl"
    package.mkdir()
    body = "".join(f"        x{i} = {i}\n" for i in range(MAX_LINES - 1))
    (package / "m.py").write_text(
        f"def short():\n    return 1\n\n\nclass K:\n    @property\n    def long(self):\n{body}\n"
        "    async def nested(self):\n        def inner():\n            pass\n"
    )
    assert function_lengths(tmp_path) == {
        "segctl/m.py:short": 2,
        "segctl/m.py:K.long": MAX_LINES,
        "segctl/m.py:K.nested": 3,
        "segctl/m.py:K.nested.inner": 2,
    }
