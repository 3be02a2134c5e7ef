import sys

from wrenlm.cli import main

sys.exit(main())
