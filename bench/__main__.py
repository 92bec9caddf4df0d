"""All benchmarks: `scripts/bench` (figures are printed; nothing is asserted)."""

from . import decision, live, split

decision.main()
print()
split.main()
print()
live.main()
