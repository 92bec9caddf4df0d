"""A provider whose CLI died must not go on acting on the host.

The engine starts `python -m pulumi.dynamic ENGINE_ADDRESS` through a launcher script
that stays its parent, so the engine's death does not orphan this process. Like
Pulumi's Go plugins (rpcutil.Healthcheck), the watch checks the engine's address:
refused connections mean the CLI is gone. Exiting closes the SSH connection, which
releases the host lock.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
import time

_started = threading.Event()


def _engine_gone(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
        return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False  # a slow engine is not a dead one


def exit_with_engine() -> None:
    """Starts the watch (once per process)."""
    if _started.is_set():
        return
    _started.set()
    address = next((a for a in sys.argv[1:] if re.fullmatch(r"[\w.-]+:\d+", a)), None)
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1)
            if os.getppid() != parent or (address is not None and _engine_gone(address)):
                os._exit(3)

    threading.Thread(target=watch, daemon=True, name="exit-with-engine").start()
