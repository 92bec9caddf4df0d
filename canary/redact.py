"""Keeps configured secret values out of what the program says: outputs, failure
reasons, progress lines, reports, notifications. Container logs and app answers quoted
in a failure reason may echo a secret (a password in a connection error, say)."""

from __future__ import annotations

from typing import Any, Iterable

MASK = "[secret]"
MIN_LENGTH = 4  # shorter values would mask ordinary words and numbers


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()):
        # Longest first, so a secret containing another is masked whole.
        self.secrets = sorted({s for s in secrets if isinstance(s, str) and len(s) >= MIN_LENGTH},
                              key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            value = value.replace(secret, MASK)
        return value

    def data(self, value: Any) -> Any:
        """`value` with every string in it redacted (dicts and lists walked)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value
