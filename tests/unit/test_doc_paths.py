"""Every repository path the README and docs/*.md name exists (modules move; the docs must follow)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_PATH = re.compile(r"(?<![\w/.])(?:segctl|tests|bench|examples|scripts)/[A-Za-z0-9_./-]*[A-Za-z0-9_/]")


def test_paths_named_in_the_docs_exist() -> None:
    missing = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for n, line in enumerate(doc.read_text().splitlines(), 1):
            for match in _PATH.finditer(line):
                if not (ROOT / match.group(0)).exists():
                    missing.append(f"{doc.relative_to(ROOT)}:{n}: {match.group(0)}")
    assert not missing, "\n".join(missing)
