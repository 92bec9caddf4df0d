"""Collects what every fault test recorded and prints the suite's summary line."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from tests.e2e.harness import TESTHOST, sh

RESULTS: list[dict] = []


def record(fault: str, checks: Mapping[str, bool] | bool, lost: int = 0, *, outage: bool = False,
           inputs: tuple[int, int] | None = None, leaks: list[str] | None = None) -> None:
    """Records one fault for the summary and fails the test unless it was survived.

    `checks`: what must hold, by name ({"production answered throughout": ..., ...}).
    `lost`: requests users lost during the fault. None may be lost, except while the
    Docker daemon restarts or the database is down (`outage=True`): no deployment tool can
    serve through that.
    `inputs`: (tried, rejected) of a bad-input sweep; its counts tell what failed, so a
    sweep may pass one bool. `leaks`: where a secret showed up; any leak fails.
    """
    failed = failures(checks, lost, outage, inputs, leaks)
    RESULTS.append({"fault": fault, "survived": not failed, "lost": lost, "outage": outage,
                    "inputs": inputs, "failed": failed})
    assert not failed, f"{fault}: not survived\n" + "\n".join(f"  {line}" for line in failed)


def failures(checks: Mapping[str, bool] | bool, lost: int, outage: bool,
             inputs: tuple[int, int] | None, leaks: list[str] | None) -> list[str]:
    """What kept a fault from being survived, one line each (none: survived)."""
    if isinstance(checks, bool):
        if inputs is None:
            raise TypeError("record() takes its conditions by name: checks={'what must hold': bool, ...}")
        tried, rejected = inputs
        checks = {f"every bad input rejected with no host change ({tried - rejected} of {tried} not)": checks}
    failed = [f"failed: {name}" for name, held in checks.items() if not held]
    if leaks:
        failed.append(f"leaks: {'; '.join(leaks)}")
    if lost and not outage:
        failed.append(f"{lost} requests lost (this fault must drop none)")
    return failed


@pytest.fixture(scope="session", autouse=True)
def testhost():
    sh(f"bash {TESTHOST} start")


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    w = terminalreporter.write_line
    w("")
    w("Fault suite")
    for r in RESULTS:
        if r["inputs"]:
            w(f"  bad inputs: {r['inputs'][1]}/{r['inputs'][0]} rejected at preview, no command on the host")
            continue
        extra = f", {r['lost']} requests lost" + (" (an outage: no tool serves through it)" if r["outage"] else "")
        why = "".join(f"\n      {line}" for line in r["failed"])
        w(f"  {'SURVIVED' if r['survived'] else 'FAILED  '} {r['fault']}{extra}{why}")
    faults = [r for r in RESULTS if not r["inputs"]]
    tried = sum(r["inputs"][0] for r in RESULTS if r["inputs"])
    rejected = sum(r["inputs"][1] for r in RESULTS if r["inputs"])
    lost = sum(r["lost"] for r in faults if not r["outage"])
    outage = sum(r["lost"] for r in faults if r["outage"])
    w(f"FAULT SUITE: faults injected {len(faults)}, survived with production serving "
      f"{sum(r['survived'] for r in faults)}, bad inputs tried {tried}, rejected with no host change "
      f"{rejected}, requests lost {lost} (during outages, the Docker daemon or the database down: {outage})")
