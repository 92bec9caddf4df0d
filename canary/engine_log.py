"""Progress lines under the resource doing the work, not under the Stack.

A dynamic provider's stdout reaches the engine through a pipe and is shown under the
Stack (the engine cannot tell which resource printed it), and `pulumi.log` has no engine
in a provider process. So lines go the way Go providers send theirs: the engine's own
`Log` RPC with the resource's URN. The engine's address is the provider process's
argument (see engine_watch.py); the URN comes with the resource's inputs. A line the
engine does not take is printed, as before.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from typing import Optional

import grpc
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc

from . import redact

_stub: Optional[engine_pb2_grpc.EngineStub] = None
_lock = threading.Lock()
_current = threading.local()  # the URN of the operation this thread carries out


def _engine() -> Optional[engine_pb2_grpc.EngineStub]:
    global _stub
    with _lock:
        if _stub is None:
            address = next((a for a in sys.argv[1:] if re.fullmatch(r"[\w.-]+:\d+", a)), None)
            if address is None:
                return None
            _stub = engine_pb2_grpc.EngineStub(grpc.insecure_channel(address))
        return _stub


def attribute_to(urn: Optional[str]) -> None:
    """Lines this thread says from now on belong to the resource `urn`."""
    _current.urn = urn or ""


def say(message: str) -> None:
    line = f"[{time.strftime('%H:%M:%S')}] {redact.current().text(message)}"
    urn = getattr(_current, "urn", "")
    engine = _engine() if urn else None
    if engine is not None:
        try:
            engine.Log(engine_pb2.LogRequest(severity=engine_pb2.INFO, message=line, urn=urn), timeout=10)
            return
        except grpc.RpcError:
            pass
    print(line, flush=True)
