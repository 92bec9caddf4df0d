"""Availability and ownership faults (`scripts/faults`): no step removes the last healthy
backend, an interrupted update keeps its record (the host's journal), and what the stack
does not own (an unlabelled container, an adopted nginx site) is never lost."""

from __future__ import annotations

import os

import pytest
from pulumi import automation as auto

from tests.e2e.harness import (Deployment, Load, container_id, containers, reset_host,
                               served_versions, sh, split_exists)

from .conftest import record
from .test_faults import _kill_cli_when, converge


@pytest.fixture
def d(tmp_path):
    reset_host()
    dep = Deployment(tmp_path)
    dep.up()  # v1 in production
    yield dep
    reset_host()


def set_env(d: Deployment, key: str, values: dict) -> None:
    for name, value in values.items():
        d.stack.set_config(f"canary:{key}.{name}", auto.ConfigValue(value=value), path=True)


def test_failed_promotion_keeps_the_healthy_canary_serving(d):
    # Production's own env is broken; the canary's overrides make it work (the guide's
    # separate canary database): the canary passes, the new production cannot start.
    d.set(image_tag="v2", monitoring_duration="6s")
    set_env(d, "env", {"HEALTH_STATUS": "500", "FAIL_PERCENT": "100"})
    set_env(d, "canary_env", {"HEALTH_STATUS": "200", "FAIL_PERCENT": "0"})
    with Load() as load:
        with pytest.raises(auto.CommandError) as first:
            d.up()
        # The same config again must not remove the canary, the only healthy backend.
        with pytest.raises(auto.CommandError) as again:
            d.up()
        checks = {"the canary v2 still runs after the second up": containers().get("odoo-canary") == "canary-demo:v2",
                  "the split file stays": split_exists(),
                  "the canary answers all of 30 requests": served_versions(30) == {"canary-demo v2": 30}}
        # The operator fixes production's env: restored behind the canary, canary removed.
        d.stack.remove_config("canary:env")
        d.up()
    out = d.outputs()
    checks |= {"the first up says traffic stays on the canary": "traffic stays on the canary" in str(first.value),
               "the second up says so too": "traffic stays on the canary" in str(again.value),
               "after the fix v2 is production": out["production_image"] == "canary-demo:v2",
               "after the fix only production runs": containers() == {"odoo": "canary-demo:v2"},
               "after the fix no split file": not split_exists(),
               "v1 recorded as the previous image": out["previous_image"] == "canary-demo:v1"}
    print(first.value, again.value, out, load.statuses, sep="\n")
    record("new production fails to start: the canary keeps the traffic until production is fixed",
           {**checks, **converge(d)}, lost=load.failures)


def test_cli_killed_while_the_new_production_starts(d):
    d.set(image_tag="v2", monitoring_duration="6s")
    set_env(d, "env", {"STARTUP_DELAY": "6s"})  # production takes seconds to listen, as Odoo does
    set_env(d, "canary_env", {"STARTUP_DELAY": "0s"})
    with Load() as load:
        killed = _kill_cli_when(d, "waiting for odoo to answer")
        d.cli("cancel", "--yes", check=False)
        d.up()  # no refresh first: the next `up` must finish the promotion, not cut users off
    out = d.outputs()
    checks = {"the CLI got to 'waiting for odoo to answer' before it was killed": killed,
              "the next up finished the promotion: v2 is production": out["production_image"] == "canary-demo:v2",
              "v1 recorded as the previous image": out["previous_image"] == "canary-demo:v1",
              "only production runs": containers() == {"odoo": "canary-demo:v2"},
              "no split file": not split_exists()}
    print(out, load.statuses, sep="\n")
    record("pulumi up killed while the new production starts", {**checks, **converge(d)}, lost=load.failures)


@pytest.mark.parametrize("moment", ["stopping and removing container odoo ", "promoted canary-demo:v2"])
def test_cli_killed_during_or_after_promotion_keeps_the_record(d, moment):
    d.set(image_tag="v2", monitoring_duration="6s")
    with Load() as load:
        killed = _kill_cli_when(d, moment)
        d.cli("cancel", "--yes", check=False)
        d.refresh()
        refreshed = d.outputs()
        d.up()
    out = d.outputs()
    checks = {f"the CLI got to {moment.strip()!r} before it was killed": killed,
              "refresh keeps v1 as the previous image": refreshed["previous_image"] == "canary-demo:v1",
              "the next up keeps v1 as the previous image": out["previous_image"] == "canary-demo:v1",
              "v2 is production": out["production_image"] == "canary-demo:v2"}
    print(refreshed, out, load.statuses, sep="\n")
    where = "between docker stop and rm" if "stopping" in moment else "after promotion"
    record(f"pulumi up killed {where}: previous image kept", {**checks, **converge(d)}, lost=load.failures)


def test_cli_killed_during_rollback_keeps_the_failed_revision(d):
    d.set(image_tag="broken", monitoring_duration="6s")
    with Load() as load:
        killed = _kill_cli_when(d, "ROLLING BACK")
        d.cli("cancel", "--yes", check=False)
        d.refresh()
        refreshed = d.outputs()
        with pytest.raises(auto.CommandError) as again:
            d.up()
    checks = {"the CLI got to 'ROLLING BACK' before it was killed": killed,
              "refresh records broken as the failed image": refreshed["failed_image"] == "canary-demo:broken",
              "refresh records the phase rolled_back or interrupted": refreshed["phase"] in ("rolled_back",
                                                                                           "interrupted"),
              "the next up refuses: broken was rolled back": "was rolled back" in str(again.value),
              "only production v1 runs": containers() == {"odoo": "canary-demo:v1"},
              "no split file": not split_exists()}
    print(refreshed, again.value, load.statuses, sep="\n")
    # The broken canary's own errors are what the analysis caught: count the others.
    lost = sum(1 for _, status, backend in load.events if status != 200 and backend != "localhost:8070")
    record("pulumi up killed during a rollback: the failed revision stays blocked", {**checks, **converge(d)},
           lost=lost)


def test_unlabelled_container_is_never_stopped_or_removed(tmp_path):
    reset_host()
    sh("docker run -d --name odoo --restart unless-stopped -p 127.0.0.1:8069:8069 canary-demo:v1")
    hand_started = container_id("odoo")
    d = Deployment(tmp_path)
    d.set(image_tag="v2")
    with pytest.raises(auto.CommandError) as refused:
        d.up()
    checks = {"up leaves the unlabelled container alone": container_id("odoo") == hand_started,
              "up's refusal suggests adopt": "adopt" in str(refused.value)}
    d.destroy()
    checks |= {"destroy leaves it": container_id("odoo") == hand_started,
               "it still runs after destroy": "true" in sh("docker inspect -f '{{.State.Running}}' odoo")}
    # Adopted on request; destroy still leaves the container it did not start.
    d2 = Deployment(tmp_path / "adopting", name="adopting", config={"adopt": "true"})
    d2.up()
    checks["adopt: up keeps the very container"] = container_id("odoo") == hand_started
    d2.destroy()
    checks["adopt: destroy leaves it"] = container_id("odoo") == hand_started
    # The guide's hand-started canary next to a stack's own production.
    reset_host()
    d3 = Deployment(tmp_path / "own", name="own")
    d3.up()
    sh("docker run -d --name odoo-canary -p 127.0.0.1:8070:8069 canary-demo:v2")
    guide_canary = container_id("odoo-canary")
    d3.set(image_tag="v2")
    with pytest.raises(auto.CommandError) as refused_canary:
        d3.up()
    d3.destroy()
    checks |= {"the hand-started canary is left by up and destroy": container_id("odoo-canary") == guide_canary,
               "destroy removes the stack's own production": container_id("odoo") is None,
               "up's refusal of the canary suggests adopt": "adopt" in str(refused_canary.value)}
    reset_host()
    record("a container without the stack's label is never stopped or removed", checks)


def test_destroy_puts_an_adopted_site_back_exactly(tmp_path):
    reset_host()
    site = "/etc/nginx/sites-enabled/odoo"
    original = ("# the guide's site\nupstream odoo { server 127.0.0.1:8069; }\n"
                "server { listen 8088; location / { proxy_pass http://odoo; } }\n")
    with open(site, "w") as f:
        f.write(original)
    os.chmod(site, 0o640)
    sh("nginx -s reload")
    d = Deployment(tmp_path, config={"nginx_site": site})
    d.up()
    managed = "Managed by the canary Pulumi program" in open(site).read()
    d.destroy()
    checks = {"up manages the site": managed,
              "destroy puts its text back": open(site).read() == original,
              "destroy puts its mode 640 back": oct(os.stat(site).st_mode & 0o777) == "0o640",
              "nginx -t passes after": sh("nginx -t 2>&1 && echo OK").strip().endswith("OK")}
    reset_host()
    record("destroy after adopting an nginx site puts it back exactly", checks)
