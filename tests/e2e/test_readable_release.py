"""A release a person can read, through the real CLI: `pulumi preview` says what the next
`pulumi up` will do, in words (the release's `planned` input, shown in the resource diff
of a PR comment, and the stack output); the progress lines show under the release."""

import pytest
from pulumi import automation as auto

from .harness import containers, ssh_commands


def planned(d, tag: str) -> str:
    d.set(image_tag=tag)
    before = ssh_commands()
    result = d.preview(diff=True)
    assert ssh_commands() == before, "a preview changed nothing on the host"
    lines = [line for line in result.stdout.splitlines() if "planned" in line]
    assert lines, result.stdout
    return "\n".join(lines)


def test_preview_says_the_planned_action(deployment):
    d = deployment
    assert "first deploy: canary-demo:v1 straight to production" in planned(d, "v1")
    d.up()
    words = planned(d, "v2")
    assert "canary: canary-demo:v1 -> canary-demo:v2, 10% of new clients for 6s of analysis, then promote it" \
        in words, words
    d.up()
    assert d.outputs()["planned"].startswith("canary: canary-demo:v1 -> canary-demo:v2, 10% of new clients")
    assert "no change: production runs canary-demo:v2" in planned(d, "v2")
    assert "instant rollback: canary-demo:v2 -> canary-demo:v1, no analysis" in planned(d, "v1")
    d.set(image_tag="broken")
    with pytest.raises(auto.CommandError):
        d.up()  # rolled back
    words = planned(d, "broken")
    assert "refused, nothing changes: canary-demo:broken was rolled back" in words, words
    assert containers() == {"odoo": "canary-demo:v2"}


def test_progress_lines_show_under_the_release(deployment):
    d = deployment
    d.up()
    d.set(image_tag="v2")
    events = []
    d.stack.up(on_event=events.append)
    lines = [(e.diagnostic_event.urn or "", e.diagnostic_event.message) for e in events if e.diagnostic_event]
    checks = [urn for urn, message in lines if "check 1/3" in message]
    assert checks and all(urn.endswith("::pulumi-python:dynamic/canary:Release::release") for urn in checks), lines
    assert not [m for urn, m in lines if "routing" in m and not urn.endswith("::release")], lines
