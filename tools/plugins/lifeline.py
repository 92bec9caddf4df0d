"""Plugins exit when the process that started them dies.

A CLI killed with SIGKILL cannot stop its plugins; each plugin watches its parent and
exits when it is gone, so nothing goes on running (or acting on a host) on its own."""

import os
import threading
import time


def exit_with_parent() -> None:
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(1)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()
