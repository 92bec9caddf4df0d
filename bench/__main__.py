"""Benchmarks: `scripts/bench [NAME...]` runs the named ones (all by default) and prints
their figures; nothing is asserted.

  decision  decision quality (simulation)     live      dropped requests, detection
  split     split accuracy (nginx)            overhead  a promotion's `pulumi up`, by part
  fleet     a promotion on 1, 3 and 6 droplets
  erp       the real ERP released under its users: errors, lost writes, a migration's cost
"""

import sys

from . import decision, erp, fleet, live, overhead, split

BENCHES = {"decision": decision.main, "split": split.main, "live": live.main, "overhead": overhead.main,
           "fleet": fleet.main, "erp": erp.main}

names = sys.argv[1:] or list(BENCHES)
unknown = [n for n in names if n not in BENCHES]
if unknown:
    sys.exit(f"unknown benchmark {', '.join(unknown)}: choose from {', '.join(BENCHES)}")
for i, name in enumerate(names):
    if i:
        print()
    BENCHES[name]()
