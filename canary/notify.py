"""Notifications to a Slack-compatible incoming webhook (`canary:notify_webhook`, a secret).

Told when a canary starts and how it ends (promoted, holding, rolled back), with the
analysis summary. A notification that cannot be delivered (bad URL, refused, an HTTP
error, a webhook that never answers) is logged without its URL and never fails or
holds up the deployment: it is sent from a background thread, and the deployment
waits at most WAIT_SECONDS for it.

The request goes to the webhook's own address only: no redirect is followed, no proxy,
.netrc or CA bundle is taken from the environment (`trust_env` off), and the address it
connects to must not be loopback, link-local (the cloud metadata endpoint) or
unspecified unless `canary:notify_allow_local` says so; checked on the connected socket,
so a name that resolves elsewhere on a second lookup gains nothing. Text that comes from
the app (failure reasons quote container logs) is escaped as Slack asks (`&`, `<`, `>`),
so a log line cannot mention `<!channel>` or make a link.
"""

from __future__ import annotations

import threading
from typing import Callable, Optional

from .config_values import local_address_kind

# Per notification: how long the deployment waits for it, and the HTTP time limits
# (connect, read) of the background request.
WAIT_SECONDS = 3.0
HTTP_TIMEOUT = (3.0, 5.0)

ICONS = {"started": ":hatching_chick:", "promoted": ":white_check_mark:", "holding": ":pause_button:",
         "rolled_back": ":rotating_light:", "aborted": ":wastebasket:", "inconclusive": ":grey_question:"}


def slack_escape(text: str) -> str:
    """Text shown as it is in a Slack message (its three control characters escaped)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


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


class RefusedAddress(OSError):
    """The webhook's host resolved to an address notifications may not reach."""


def _session(allow_local: bool):
    """A requests session that ignores the environment and, unless `allow_local`,
    refuses a connection whose peer is a local address (imported in the sender thread)."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    def checked(cls):
        class Checked(cls):
            def _new_conn(self):
                sock = super()._new_conn()
                kind = local_address_kind(sock.getpeername()[0])
                if kind:
                    sock.close()
                    raise RefusedAddress(f"the webhook's address is {kind} (canary:notify_allow_local is false)")
                return sock
        return Checked

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {
                "http": type("Pool", (HTTPConnectionPool,), {"ConnectionCls": checked(HTTPConnection)}),
                "https": type("Pool", (HTTPSConnectionPool,), {"ConnectionCls": checked(HTTPSConnection)})}

    session = requests.Session()
    session.trust_env = False  # no proxy, .netrc or CA bundle from the environment
    if not allow_local:
        session.mount("http://", Adapter())
        session.mount("https://", Adapter())
    return session


class Notifier:
    def __init__(self, url: Optional[str], stack: str, app: str, log: Callable[[str], None],
                 allow_local: bool = False):
        self.url, self.stack, self.app, self.log = url, stack, app, log
        self.allow_local = allow_local

    def send(self, event: str, text: str, analysis: Optional[dict] = None) -> None:
        if not self.url:
            return
        body = "\n".join([f"{ICONS.get(event, '')} *{self.app}* ({self.stack}): {slack_escape(text)}",
                          *map(slack_escape, summary_lines(analysis or {}))])
        payload = {"text": body, "event": event, "stack": self.stack, "app": self.app}
        sender = threading.Thread(target=self._post, args=(event, payload), daemon=True,
                                  name=f"notify-{event}")
        sender.start()
        sender.join(WAIT_SECONDS)
        if sender.is_alive():
            self.log(f"notification '{event}' not answered within {WAIT_SECONDS:g}s; the deployment goes on")

    def _post(self, event: str, payload: dict) -> None:
        try:
            # In the sender thread, not at the top: see canary/controller.py. A redirect
            # (3xx) is not followed: it is an answer the webhook did not accept.
            with _session(self.allow_local) as session:
                r = session.post(self.url, json=payload, timeout=HTTP_TIMEOUT, allow_redirects=False)
            if r.status_code >= 300:
                self._say(f"notification '{event}' not accepted by the webhook (HTTP {r.status_code}); "
                          "the deployment goes on")
        except Exception as err:  # noqa: BLE001 - nothing here may fail the deployment
            # The webhook URL is a secret: name the error, never the URL (requests'
            # messages contain it). A refused address says which kind it was.
            refused = _refused(err)
            why = f"{type(err).__name__}: {refused}" if refused else type(err).__name__
            self._say(f"notification '{event}' failed ({why}); the deployment goes on")

    def _say(self, message: str) -> None:
        try:
            self.log(message)
        except Exception:  # noqa: BLE001 - a late answer after the update ended
            pass


def _refused(err: Optional[BaseException]) -> Optional[RefusedAddress]:
    """Our refusal inside what requests raised (its error wraps urllib3's, which wraps
    ours), following only exceptions (an SSL error's `reason` is a string)."""
    for _ in range(10):
        if not isinstance(err, BaseException) or isinstance(err, RefusedAddress):
            return err if isinstance(err, RefusedAddress) else None
        wrapped = (getattr(err, "reason", None), err.__cause__, err.__context__, *err.args[:1])
        err = next((e for e in wrapped if isinstance(e, BaseException)), None)
    return None
