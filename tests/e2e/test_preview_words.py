"""`pulumi preview` says what the next `pulumi up` will do, in words, through the real CLI:
the release's `planned` input (the resource diff of a PR comment) and the stack output."""

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
    assert "instant rollback: canary-demo:v2 -> canary-demo:v1, no analysis" in planned(d, "v1")
    d.set(image_tag="broken")
    with pytest.raises(auto.CommandError):
        d.up()  # rolled back
    words = planned(d, "broken")
    assert "refused, nothing changes: canary-demo:broken was rolled back" in words, words
    assert containers() == {"odoo": "canary-demo:v2"}
