"""The operators' verbs, run in the project directory (like `pulumi`), from any machine
with the stack's config and SSH access:

    python -m canary status [--watch] [--stack NAME]   the journal and any running analysis, per droplet
    python -m canary abort [--stack NAME]              roll the running canary back at its next check
    python -m canary promote [--full] [--stack NAME]   pass the current step / promote now

Read-only but for request.json: no host lock is taken (the running update holds it), and
nothing is written when no analysis runs. The droplets and their SSH access come from the
stack config as the release's provider reads them (config.load_targets).
"""

from __future__ import annotations

import argparse
import getpass
import json
import socket
import subprocess
import sys
import time
from typing import Optional

from . import operate
from .config import load, load_targets
from .config_fields import decoded
from .errors import CanaryError
from .remote import STATE_DIR
from .remote.ssh import Host
from .target import Target

WATCH_SECONDS = 2


def stack_config(stack: Optional[str]) -> tuple[str, dict]:
    """(the stack's name, its canary:* config with secrets) as `pulumi config` shows them."""
    at = ["--stack", stack] if stack else []
    name = stack or _pulumi("stack", "--show-name").strip()
    raw = json.loads(_pulumi("config", "--json", "--show-secrets", *at))
    values = {}
    for key, v in raw.items():
        namespace, _, short = key.partition(":")
        if namespace == "canary":
            values[short] = decoded(short, v.get("objectValue", v.get("value")))
    return name, values


def _pulumi(*args: str) -> str:
    r = subprocess.run(["pulumi", *args, "--non-interactive"], capture_output=True, text=True)
    if r.returncode != 0:
        raise CanaryError(f"pulumi {' '.join(args)} failed: {(r.stderr or r.stdout).strip()}")
    return r.stdout


class Droplet:
    """One droplet's files of the app, over SSH."""

    def __init__(self, target: Target, app: str):
        self.target, self.dir = target, f"{STATE_DIR}/{app}"
        self.host = Host(target, retries=2)

    def read(self) -> tuple[dict, Optional[dict]]:
        """(the journal, the progress of an analysis running now or None)."""
        journal = self.host.read_file(f"{self.dir}/journal.json")
        progress = operate.running(self.host.read_file(f"{self.dir}/progress.json"), journal, time.time())
        try:
            entry = json.loads(journal or "{}")
        except ValueError:
            entry = {}
        return (entry if isinstance(entry, dict) else {}), progress

    def ask(self, request: operate.Request) -> None:
        self.host.write_file(f"{self.dir}/request.json", request.to_json(), 0o600)


def describe(d: Droplet, journal: dict, p: Optional[dict]) -> str:
    r = journal.get("record") if isinstance(journal.get("record"), dict) else {}
    lines = [f"{d.target.label}: phase {r.get('phase') or 'unknown'}, production {r.get('production_image') or '-'}"
             + (f", canary {r['canary_image']} at {r.get('canary_weight', 0)}%" if r.get("canary_image") else "")
             + (f" (last step {journal.get('step')} at {journal.get('at')})" if journal else " (no journal)")]
    if p:
        c, s = p.get("canary") or {}, p.get("stable") or {}
        lines += [f"  analysing {p['image']} at {p.get('weight')}%: check {p.get('check')}/{p.get('checks')}, "
                  f"{p.get('seconds_left')}s left; canary {c.get('requests')} req {c.get('error_rate')}% 5xx "
                  f"p95 {1000 * (c.get('p95') or 0):.0f}ms, stable {s.get('requests')} req "
                  f"{s.get('error_rate')}% 5xx p95 {1000 * (s.get('p95') or 0):.0f}ms",
                  f"  run by {p.get('holder')}", f"  {p.get('line')}"]
    elif journal.get("step") not in (None, "done"):
        lines.append(f"  an update is at step {journal.get('step')} (no analysis runs)")
    return "\n".join(lines)


def status(droplets: list[Droplet], watch: bool) -> int:
    while True:
        shown = []
        for d in droplets:
            try:
                shown.append(describe(d, *d.read()))
            except CanaryError as err:
                shown.append(f"{d.target.label}: unreachable: {err}")
        if watch and sys.stdout.isatty():
            print("\033[H\033[J", end="")
        print(time.strftime("%H:%M:%S"), *shown, sep="\n", flush=True)
        if not watch:
            return 0
        time.sleep(WATCH_SECONDS)


def ask(droplets: list[Droplet], verb: str) -> int:
    """Writes the request on every droplet where an analysis runs (a fleet: the canary droplets)."""
    who = f"{getpass.getuser()}@{socket.gethostname()}"
    asked = []
    for d in droplets:
        _, p = d.read()
        if p is None:
            continue
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        d.ask(operate.Request(verb, who, at, p["image"]))
        asked.append(f"{d.target.label}: asked to {verb.replace('-', ' --')} {p['image']} (check "
                     f"{p.get('check')}/{p.get('checks')}); the analysis acts on it after its current check")
    if not asked:
        print(f"nothing to {verb.replace('-', ' --')}: no analysis runs on "
              f"{', '.join(d.target.label for d in droplets)}", file=sys.stderr)
        return 1
    print(*asked, sep="\n")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m canary", description=__doc__.split("\n\n")[0])
    parser.add_argument("verb", choices=("status", "abort", "promote"))
    parser.add_argument("--stack", help="the stack (default: the selected one)")
    parser.add_argument("--watch", action="store_true", help="status: refresh every 2 s until Ctrl-C")
    parser.add_argument("--full", action="store_true", help="promote: now, without the remaining steps")
    a = parser.parse_args(argv)
    droplets: list[Droplet] = []
    try:
        stack, values = stack_config(a.stack)
        app = load(values.get, stack).container_name
        droplets = [Droplet(t, app) for t in load_targets(values.get)]
        if a.verb == "status":
            return status(droplets, a.watch)
        return ask(droplets, operate.PROMOTE_FULL if a.full else a.verb)
    except CanaryError as err:  # (a ConfigError too)
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for d in droplets:
            d.host.close()
