"""`movierec serve` with the proposed recommend.py hot loops patched in (bench/proposals.py):
what the HTTP numbers become if the proposals are accepted. Same arguments as `movierec`."""

from __future__ import annotations

import sys

from bench import proposals
from movierec.cli import main

if __name__ == "__main__":
    with proposals.patched():
        sys.exit(main(sys.argv[1:]))
