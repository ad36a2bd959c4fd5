"""The ``fairrec`` command of the wheel: the workspace's ``fairrec`` binary, shipped in
``fairrec/_bin/`` and run in place of this process."""

import os
import sys
from pathlib import Path


def binary() -> Path:
    """Where the wheel put the ``fairrec`` binary."""
    return Path(__file__).resolve().parent / "_bin" / "fairrec"


def main() -> None:
    exe = binary()
    if not exe.is_file():
        sys.exit(
            f"fairrec: this installation has no fairrec binary at {exe} "
            "(build the wheel with python/build-wheel.sh, which puts it there)"
        )
    if not os.access(exe, os.X_OK):
        os.chmod(exe, exe.stat().st_mode | 0o111)
    os.execv(str(exe), ["fairrec", *sys.argv[1:]])


if __name__ == "__main__":
    main()
