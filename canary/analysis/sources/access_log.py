"""Real traffic: the lines nginx appended to the site's access log since the analysis
started, per backend (analysis/traffic.py parses them).

Reads are bounded: at most `max_bytes` of new log a check cross the SSH connection and
get parsed (a flood of long URLs cannot make a check take longer than its interval or
block deploys). What lies beyond is skipped, and the check says so: from then on the
access log counts as unmeasured, so the analysis can still fail on what it read but
cannot pass on a part of the traffic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import traffic
from ..verdict import Evidence
from . import Check, Source

if TYPE_CHECKING:
    from ...remote.ssh import Host

MAX_BYTES = 32 * 1024 * 1024  # per check: about 100 000 requests' lines


class AccessLog(Source):
    name = "the access log"

    def __init__(self, host: Host, path: str, stable_port: int, canary_port: int,
                 max_bytes: int = MAX_BYTES):
        self.host, self.path, self.max_bytes = host, path, max_bytes
        self.stable_port, self.canary_port = stable_port, canary_port
        self.offset, self.partial, self.skipped = 0, "", 0
        self.resync = False  # the next read starts mid-line (after a skip)

    def __enter__(self) -> "AccessLog":
        self.offset = self._size()
        return self

    def _size(self) -> int:
        out = self.host.sh('stat -c %s "$1" 2>/dev/null || echo 0', self.path, check=False).strip()
        return int(out) if out.isdigit() else 0

    def new_lines(self) -> str:
        """Whole lines appended since the last read (at most `max_bytes`)."""
        size, self.skipped = self._size(), 0
        if size < self.offset:  # rotated
            self.offset, self.partial, self.resync = 0, "", False
        if size == self.offset:
            return ""
        want = size - self.offset
        take = min(want, self.max_bytes)
        data = self.host.sh('tail -c +"$1" "$2" | head -c "$3"', str(self.offset + 1), self.path,
                            str(take), check=False)
        self.offset += want  # what was not read is skipped, never read later
        self.skipped = want - take
        text = self.partial + data
        if self.resync:  # the rest of a line the last skip cut
            _, _, text = text.partition("\n")
        lines, _, self.partial = text.rpartition("\n")
        self.resync = bool(self.skipped)
        if self.resync or len(self.partial) > self.max_bytes:
            self.partial = ""  # cut by the skip, or longer than any line of ours
        return lines

    def collect(self, evidence: Evidence, check: Check) -> None:
        stats = traffic.parse(self.new_lines(), self.stable_port, self.canary_port)
        evidence.canary.merge(stats["canary"])
        evidence.stable.merge(stats["stable"])
        if self.skipped:
            evidence.unmeasured[self.name] = (f"{self.skipped} bytes of it were not read in check "
                                              f"{check.index}: over {self.max_bytes} bytes a check")

    def note(self) -> str:
        return f"access log: {self.skipped} bytes skipped" if self.skipped else ""
