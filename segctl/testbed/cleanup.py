"""Remove testbed leftovers: ``python -m segctl.testbed.cleanup [PREFIX ...]``.

Without a prefix, removes everything whose name matches the generated prefixes
(``sg`` + 4 hex digits), i.e. leftovers of any crashed test run. Do not run it
while another test run is using the machine.
"""

from __future__ import annotations

import sys

from segctl.testbed import netns, ovs
from segctl.testbed.lab import PREFIX_PATTERN, cleanup

__all__ = ["find_prefixes", "main"]


def find_prefixes() -> list[str]:
    """Generated prefixes that currently own a bridge, namespace or link."""
    bridges = ovs.list_bridges() if ovs.ovs_running() else []
    names = [*bridges, *netns.list_namespaces(), *netns.list_links()]
    return sorted({m.group(0) for n in names if (m := PREFIX_PATTERN.match(n))})


def main(argv: list[str] | None = None) -> int:
    """Clean the given prefixes (or all generated ones); print what was removed."""
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return 0
    if not ovs.ovs_running():
        print("cleanup: Open vSwitch is not running; only namespaces/links are checked")
    prefixes = args or find_prefixes()
    for prefix in prefixes:
        removed = cleanup(prefix)
        count = sum(len(v) for v in removed.values())
        print(f"cleanup {prefix}: removed {count} ({', '.join(f'{k}={len(v)}' for k, v in removed.items())})")
    if not prefixes:
        print("cleanup: nothing to remove")
    return 0


if __name__ == "__main__":
    sys.exit(main())
