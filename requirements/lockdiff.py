"""Prints the packages whose installed version differs from requirements.lock (for `make test-latest`).

Usage: python requirements/lockdiff.py requirements.lock FREEZE_FILE, where FREEZE_FILE is the output
of `pip list --format=freeze`. Only the standard library: it runs before anything is known to work.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s\\;]+)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = PIN.match(line.strip())
        if match:
            found[normalise(match.group(1))] = match.group(2)
    return found


def main(lock_file: str, freeze_file: str) -> int:
    locked = pins(Path(lock_file).read_text())
    installed = pins(Path(freeze_file).read_text())
    changed = sorted(name for name in locked.keys() & installed.keys() if locked[name] != installed[name])
    for name in changed:
        print(f"  {name}: lock {locked[name]} -> {installed[name]}")
    for name in sorted(installed.keys() - locked.keys()):
        if name not in ("modgate", "pip"):
            print(f"  {name}: not in the lock -> {installed[name]}")
    for name in sorted(locked.keys() - installed.keys()):
        print(f"  {name}: lock {locked[name]} -> not installed")
    if not changed:
        print("  (none: the lock is the newest the ranges allow)")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
