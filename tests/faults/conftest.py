"""Collects what every fault test recorded and prints the suite's summary line."""

import pytest

from tests.e2e.harness import TESTHOST, sh

RESULTS: list[dict] = []


def record(fault: str, survived: bool, lost: int, outage: bool = False, inputs=None, leaks=None):
    RESULTS.append({"fault": fault, "survived": bool(survived), "lost": lost, "outage": outage,
                    "inputs": inputs, "leaks": leaks})
    assert survived, f"{fault}: not survived (leaks: {leaks})" if leaks else f"{fault}: not survived"


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
        extra = f", {r['lost']} requests lost" + (" (Docker daemon restart)" if r["outage"] else "")
        w(f"  {'SURVIVED' if r['survived'] else 'FAILED  '} {r['fault']}{extra}")
    faults = [r for r in RESULTS if not r["inputs"]]
    tried = sum(r["inputs"][0] for r in RESULTS if r["inputs"])
    rejected = sum(r["inputs"][1] for r in RESULTS if r["inputs"])
    lost = sum(r["lost"] for r in faults if not r["outage"])
    outage = sum(r["lost"] for r in faults if r["outage"])
    w(f"FAULT SUITE: faults injected {len(faults)}, survived with production serving "
      f"{sum(r['survived'] for r in faults)}, bad inputs tried {tried}, rejected with no host change "
      f"{rejected}, requests lost {lost} (during the Docker daemon restart: {outage})")
