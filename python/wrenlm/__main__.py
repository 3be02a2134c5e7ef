"""``python -m wrenlm``: the same as the ``wrenlm`` command."""

from __future__ import annotations

import sys

from wrenlm.cli import main

if __name__ == "__main__":
    sys.exit(main())
