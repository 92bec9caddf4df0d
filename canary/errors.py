"""The errors a user acts on, apart from bugs.

A `CanaryError` is shown as its message alone: it says what happened and what to do (a
config key to fix, a host to bring up). Any other exception is a bug and keeps its full
traceback. Nothing here changes how Python reports errors process-wide.
"""

from __future__ import annotations


class CanaryError(Exception):
    """A problem the user can act on; its message is the whole report."""


class DeployError(CanaryError):
    """The update cannot go on; the host is left serving production."""


def rolled_back_before(image: str, reason: str) -> DeployError:
    """The error for a revision that was rolled back and is asked for again."""
    return DeployError(f"{image} was rolled back: {reason}. Change image_tag, or set "
                       "`pulumi config set retry true` to analyse it again.")
