"""``python -m plait.bench``: the same as ``plait bench``."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m plait.bench"))
