"""The program's and the release provider's processes end without Python's teardown.

At the end of every `pulumi up`, preview or refresh the engine waits for the program's
process to exit, then closes the providers one after the other (SIGINT, then it waits
for the exit); the CLI ends after them. Python spent 0.09-0.17 s in the program's
process and 0.14 s in the provider's tearing down the modules they imported (the
Pulumi SDKs, SSH, HTTP, the report's libraries): a quarter of a second on every run,
with nothing left to do. So each leaves with os._exit from its first atexit handler,
which Python runs only after it joined the threads still at work (the provider's
calls from the engine): an operation in flight still ends as before.

Not when Pulumi traces the run (TRACEPARENT): its SDK sends the spans at exit.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys

_registered = False


def _tracing() -> bool:
    return bool(os.environ.get("TRACEPARENT"))


def _leave(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed pipe: nothing left to say anyway
            pass
    os._exit(code)


def _register(handler) -> None:
    global _registered
    if not _registered and not _tracing():
        _registered = True
        atexit.register(handler)


def in_provider_process() -> bool:
    """Whether this is the dynamic provider's process (`python -m pulumi.dynamic`)."""
    main = sys.modules.get("__main__")
    return getattr(getattr(main, "__spec__", None), "name", "") == "pulumi.dynamic.__main__"


def in_program_process() -> bool:
    """Whether this is the program's process (the language host's runner script; while
    it runs the program, the program is `__main__`)."""
    return any(os.path.basename(a) == "pulumi-language-python-exec" for a in sys.orig_argv[:3])


def provider() -> None:
    """In the provider's process: the engine closes it (SIGINT) once it needs it no more."""
    if in_provider_process():
        _register(lambda: _leave(0))


def program() -> None:
    """In the program's process: leaves quickly only when the language host's runner
    says the program succeeded (its `exit_code`, 0); any other exit goes the usual way,
    so a failed program's status is never changed.

    And quietly when interrupted: once an update failed (a rolled-back release, say) the
    language host stops the program with SIGINT, which Python turned into a 40-line
    KeyboardInterrupt traceback under the Stack, below the reason. The program has
    nothing of its own to clean up (the providers do the work), so it leaves at once."""
    def leave() -> None:
        if getattr(sys.modules.get("__main__"), "exit_code", None) == 0:
            _leave(0)
    if in_program_process():
        _register(leave)
        signal.signal(signal.SIGINT, lambda signum, frame: _leave(1))
