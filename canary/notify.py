"""Notifications to a Slack-compatible incoming webhook (`canary:notify_webhook`, a secret).

Told when a canary starts and how it ends (promoted, holding, rolled back), with the
analysis summary. A notification that cannot be delivered is logged and never fails
the deployment.
"""

from __future__ import annotations

from typing import Callable, Optional

import requests

ICONS = {"started": ":hatching_chick:", "promoted": ":white_check_mark:", "holding": ":pause_button:",
         "rolled_back": ":rotating_light:", "aborted": ":wastebasket:", "inconclusive": ":grey_question:"}


def summary_lines(analysis: dict) -> list[str]:
    if not analysis or "decision" not in analysis:
        return []
    lines = [f"analysis at {analysis.get('weight')}%: {analysis.get('decision')} — {analysis.get('reason')}"]
    if analysis.get("probes") is not None:
        lines.append(f"health checks {analysis['probes'] - analysis.get('probe_failures', 0)}/"
                     f"{analysis['probes']} ok ({analysis.get('error_rate', 0)}% errors)")
    for side in ("canary", "stable"):
        b = analysis.get(side) or {}
        if b.get("requests"):
            lines.append(f"{side}: {b['requests']} requests, {b['error_rate']}% 5xx, "
                         f"p95 {b['p95'] * 1000:.0f} ms")
    return lines


class Notifier:
    def __init__(self, url: Optional[str], stack: str, app: str, log: Callable[[str], None]):
        self.url, self.stack, self.app, self.log = url, stack, app, log

    def send(self, event: str, text: str, analysis: Optional[dict] = None) -> None:
        if not self.url:
            return
        body = "\n".join([f"{ICONS.get(event, '')} *{self.app}* ({self.stack}): {text}",
                          *summary_lines(analysis or {})])
        try:
            r = requests.post(self.url, json={"text": body, "event": event, "stack": self.stack,
                                              "app": self.app}, timeout=5)
            if r.status_code >= 300:
                self.log(f"notification not accepted by the webhook (HTTP {r.status_code})")
        except requests.RequestException as err:
            # The webhook URL is a secret: name the error, not the URL.
            self.log(f"notification failed ({type(err).__name__}); the deployment goes on")
