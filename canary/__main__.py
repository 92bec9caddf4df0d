"""`python -m canary status|abort|promote`: operate a running release (operate_cli.py)."""

import sys

from .operate_cli import main

sys.exit(main(sys.argv[1:]))
