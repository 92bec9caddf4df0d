"""The SSH target: where the host is and the keys to reach it (plain data, no I/O).

The config layer builds it (config.load_targets: one per droplet); the SSH transport
(remote/ssh.py) connects with it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    user: str
    host_key: str  # "ssh-ed25519 AAAA..."
    private_key: str
    name: str = ""  # the droplet's name in a fleet (canary:hosts); "" for the one canary:host

    @property
    def label(self) -> str:
        """How messages name the droplet."""
        return f"{self.name} ({self.host})" if self.name else self.host

    def __repr__(self) -> str:  # never show the key
        return f"Target({self.name + ': ' if self.name else ''}{self.user}@{self.host}:{self.port})"
