"""The program's and the provider's processes end without teardown (canary/quick_exit.py),
each checked in a process of its own."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from canary import quick_exit

ROOT = Path(__file__).resolve().parents[2]


def _run(argv: list[str], **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **env})


# A stand-in for `python -m pulumi.dynamic`: a call from the engine still runs in a thread
# of its pool when the main thread ends (the engine closed the plugin).
PROVIDER = textwrap.dedent('''
    import atexit, importlib.machinery, sys, threading, time
    sys.modules["__main__"].__spec__ = importlib.machinery.ModuleSpec("pulumi.dynamic.__main__", None)
    atexit.register(lambda: print("teardown ran", flush=True))  # registered before: skipped
    from canary import quick_exit
    quick_exit.provider()
    def call():
        time.sleep(0.5)
        print("call finished", flush=True)
    threading.Thread(target=call).start()
    print("main thread done", flush=True)
''')


def test_the_provider_process_exits_without_teardown_once_the_engines_calls_are_done():
    done = _run(["-c", PROVIDER])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["main thread done", "call finished"]
    assert "teardown ran" not in done.stdout
    traced = _run(["-c", PROVIDER], TRACEPARENT="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    assert "teardown ran" in traced.stdout  # Pulumi's SDK sends its spans at exit


# A stand-in for the language host's runner: its `exit_code` says how the program went.
RUNNER = textwrap.dedent('''
    import atexit, sys
    atexit.register(lambda: print("teardown ran", flush=True))
    from canary import quick_exit
    quick_exit.program()
    exit_code = int(sys.argv[1])
    sys.exit(exit_code)
''')


@pytest.mark.parametrize("code", [0, 1, 32])
def test_the_program_process_exits_without_teardown_only_when_the_program_succeeded(tmp_path, code):
    runner = tmp_path / "pulumi-language-python-exec"
    runner.write_text(RUNNER)
    done = _run([str(runner), str(code)])
    assert done.returncode == code, done.stderr
    assert ("teardown ran" in done.stdout) == (code != 0)


def test_any_other_process_keeps_its_exit():
    # This one (pytest): nothing registered that could hide its exit status.
    quick_exit.program()
    quick_exit.provider()
    assert not quick_exit._registered


# The runner stopped by the language host once the update failed: SIGINT mid-program.
INTERRUPTED = textwrap.dedent('''
    import asyncio, os, signal, sys
    from canary import quick_exit
    quick_exit.program()
    async def program():
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.sleep(5)
    asyncio.new_event_loop().run_until_complete(program())
''')


def test_an_interrupted_program_leaves_without_a_traceback(tmp_path):
    runner = tmp_path / "pulumi-language-python-exec"
    runner.write_text(INTERRUPTED)
    done = _run([str(runner)])
    assert done.returncode == 1 and "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr
    plain = _run(["-c", INTERRUPTED])  # any other process keeps Python's KeyboardInterrupt
    assert "KeyboardInterrupt" in plain.stderr
