"""Print the entries of requirements.lock (each `name==version` with its `--hash` lines) for the names given.

The image's wheel stage installs setuptools from the lock, hash-checked, before it builds the lock's
source-only distributions (psycogreen) without build isolation: nothing unhashed is fetched. Stdlib only:
it runs on the base image's python3 before anything is installed.

    python3 lock_entries.py requirements.lock setuptools > setuptools.txt
"""

from __future__ import annotations

import re
import sys


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def entries(text: str) -> dict[str, str]:
    """Canonical name -> the entry's text (continuation lines kept) of every pin of a hashed lock."""
    found: dict[str, str] = {}
    current: list[str] = []
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current.append(line)
        if not line.rstrip().endswith("\\"):
            name = re.split(r"[=<>!~ \[;]", current[0].strip(), maxsplit=1)[0]
            found[canonical(name)] = "\n".join(current)
            current = []
    return found


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as handle:
        locked = entries(handle.read())
    missing = [name for name in argv[1:] if canonical(name) not in locked]
    if missing:
        print(f"not in {argv[0]}: {', '.join(missing)}", file=sys.stderr)
        return 1
    print("\n".join(locked[canonical(name)] for name in argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
