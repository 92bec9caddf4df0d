"""Keeps configured secret values out of everything the tool says.

A `Redactor` knows the stack's secret values (container env set with `--secret`, the
notification webhook, the SSH key, a secret metric command, the forced-routing token,
the registry password) and replaces each of them,
wherever it appears in a text, with `[secret]`: in failure reasons and messages (which
quote container logs and command errors), outputs, analysis reports, notifications and
progress lines. The provider installs the stack's redactor for its process (`install`);
the boundaries apply it (`current()`): outputs and errors in provider.py, progress
lines, notifications, report files.

Values shorter than MIN_LENGTH are not masked: they would mangle every message (an env
value `1` or `on`), and masking them hides nothing. Values that are public anyway (the
app's name, its image, its ports) are not masked either.
"""

from __future__ import annotations

import html
import json
import shlex
from typing import Any, Iterable, Optional

MASK = "[secret]"
MIN_LENGTH = 4


def _variants(value: str) -> set[str]:
    """The value as it may appear in a message: raw, shell-quoted, JSON-escaped, or
    HTML-escaped (a report page)."""
    out = {value, shlex.quote(value), json.dumps(value)[1:-1], html.escape(value, quote=False),
           html.escape(value)}
    return {v for v in out if len(v) >= MIN_LENGTH}


class Redactor:
    def __init__(self, secrets: Iterable[Optional[str]] = (), public: Iterable[str] = ()):
        keep = {p for p in public if p}
        values: set[str] = set()
        for s in secrets:
            if not s:
                continue
            s = str(s)
            candidates = {s.strip()} | {line.strip() for line in s.splitlines()}
            for c in candidates:
                if len(c) >= MIN_LENGTH and c not in keep:
                    values |= _variants(c)
        # Longest first: a secret that contains another is masked whole.
        self.values = sorted(values, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self.values)

    def text(self, s: Any) -> Any:
        if not isinstance(s, str) or not self.values:
            return s
        for v in self.values:
            if v in s:
                s = s.replace(v, MASK)
        return s

    def value(self, v: Any) -> Any:
        """Strings anywhere in a JSON-like value (dicts, lists) masked."""
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, dict):
            return {k: self.value(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return type(v)(self.value(x) for x in v)
        return v


class RedactingNotifier:
    """A notifier whose texts and analysis summaries pass through the redactor."""

    def __init__(self, notifier, redactor: Redactor):
        self.inner, self.redactor = notifier, redactor

    def send(self, event: str, text: str, analysis: Optional[dict] = None) -> None:
        self.inner.send(event, self.redactor.text(text), self.redactor.value(analysis))


_current = Redactor()


def install(redactor: Redactor) -> None:
    """The stack's redactor for this process (one provider process serves one stack)."""
    global _current
    _current = redactor


def current() -> Redactor:
    return _current
