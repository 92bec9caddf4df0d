"""The analysis reports (JSON + HTML) a release writes on the machine running Pulumi.

A page takes a few tenths of a second of the release's process to render, which would
slow the quick steps that follow an analysis (a promotion's journal write and nginx
change by about 0.05 s). So a report is queued, rendered from the release's next wait on
(nginx's drain, the next analysis step), and `finish` waits for it before the update
returns. A report that cannot be written is said, never a reason to fail the release.
"""

from __future__ import annotations

import threading
from typing import Callable

from .spec import ReleaseSpec


class ReportWriter:
    def __init__(self, directory: str, spec: ReleaseSpec, log: Callable[[str], None]):
        self.directory, self.spec, self.log = directory, spec, log
        self._writers: list[threading.Thread] = []

    def add(self, summary: dict) -> None:
        if not self.directory:
            return

        def write() -> None:
            try:
                from .analysis import report  # imported by the writer thread
                path = report.write(self.directory, self.spec.stack, self.spec.image, summary,
                                    outcome=summary["decision"],
                                    threshold=self.spec.analysis.thresholds.error_threshold)
                self.log(f"analysis report: {path} (and .html)")
            except Exception as err:  # evidence for people: never a reason to fail the release
                self.log(f"could not write the analysis report: {err}")
        self._writers.append(threading.Thread(target=write, name="analysis report", daemon=True))

    def start(self) -> None:
        """Renders the queued reports (from a wait of the release on)."""
        for writer in self._writers:
            if writer.ident is None:
                writer.start()

    def finish(self) -> None:
        self.start()
        for writer in self._writers:
            writer.join()
        self._writers.clear()
