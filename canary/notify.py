"""Notifications to a Slack-compatible incoming webhook (`canary:notify_webhook`, a secret).

Told when a canary starts and how it ends (promoted, holding, rolled back), with the
analysis summary. A notification that cannot be delivered (bad URL, refused, an HTTP
error, a webhook that never answers) is logged without its URL and never fails or
holds up the deployment: it is sent from a background thread, and the deployment
waits at most WAIT_SECONDS for it.
"""

from __future__ import annotations

import threading
from typing import Callable, Optional

# Per notification: how long the deployment waits for it, and the HTTP time limits
# (connect, read) of the background request.
WAIT_SECONDS = 3.0
HTTP_TIMEOUT = (3.0, 5.0)

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
        payload = {"text": body, "event": event, "stack": self.stack, "app": self.app}
        sender = threading.Thread(target=self._post, args=(event, payload), daemon=True,
                                  name=f"notify-{event}")
        sender.start()
        sender.join(WAIT_SECONDS)
        if sender.is_alive():
            self.log(f"notification '{event}' not answered within {WAIT_SECONDS:g}s; the deployment goes on")

    def _post(self, event: str, payload: dict) -> None:
        try:
            import requests  # in the sender thread, not at the top: see canary/controller.py
            r = requests.post(self.url, json=payload, timeout=HTTP_TIMEOUT)
            if r.status_code >= 300:
                self._say(f"notification '{event}' not accepted by the webhook (HTTP {r.status_code}); "
                          "the deployment goes on")
        except Exception as err:  # noqa: BLE001 - nothing here may fail the deployment
            # The webhook URL is a secret: name the error, never the URL (requests'
            # messages contain it).
            self._say(f"notification '{event}' failed ({type(err).__name__}); the deployment goes on")

    def _say(self, message: str) -> None:
        try:
            self.log(message)
        except Exception:  # noqa: BLE001 - a late answer after the update ended
            pass
