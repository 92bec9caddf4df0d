"""Several droplets: the config of a fleet, its waves and gate, the fleet's failure
(fleet.py), and the plan of a droplet of a later wave."""

import pytest

from canary import fleet as F
from canary import plan as P
from canary.config import ConfigError, load, load_targets

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIItacbEdtqXT2Ea9U7i3NjqphXIndLeHps5lhqc6CTA1"
OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHhvc3Qtb3duLWtleS1mb3ItdGVzdGluZy0xMjM0NTY3"
BASE = {"image": "odoo-erp", "image_tag": "prod-abc1234", "ssh_private_key": KEY, "ssh_host_key": HOST_KEY}
THREE = [{"name": "web-1", "host": "10.0.0.5"}, {"name": "web-2", "host": "10.0.0.6", "ssh_port": 2222},
         {"name": "web-3", "host": "10.0.0.7", "ssh_user": "deploy", "ssh_host_key": OTHER_KEY}]


def settings(**over):
    values = {**BASE, **over}
    return load(lambda k: values.get(k), "test", read_file=lambda p: {"/keys/web.pub": OTHER_KEY + " web\n"}[p])


def problems(**over):
    with pytest.raises(ConfigError) as err:
        settings(**over)
    return str(err.value)


# -- config ---------------------------------------------------------------------------------
def test_one_host_stays_a_fleet_of_one_without_a_name():
    s = settings(host="165.227.10.178", ssh_port="2222")
    assert not s.is_fleet and s.host == "165.227.10.178"
    (t,) = s.fleet
    assert (t.name, t.host, t.port, t.user, t.host_key, t.private_key) == ("", "165.227.10.178", 2222, "root",
                                                                           HOST_KEY, KEY)


def test_hosts_take_what_they_leave_out_from_the_top_level_keys():
    s = settings(hosts=THREE, ssh_user="ops")
    assert s.is_fleet and s.host is None
    assert [(t.name, t.host, t.port, t.user, t.host_key) for t in s.fleet] == [
        ("web-1", "10.0.0.5", 22, "ops", HOST_KEY), ("web-2", "10.0.0.6", 2222, "ops", HOST_KEY),
        ("web-3", "10.0.0.7", 22, "deploy", OTHER_KEY)]
    assert all(t.private_key == KEY for t in s.fleet)
    assert s.fleet[1].label == "web-2 (10.0.0.6)" and "KEY" not in repr(s.fleet[0])


def test_bare_addresses_are_named_by_their_place_and_host_keys_may_come_from_files():
    s = settings(hosts=["10.0.0.5", {"host": "10.0.0.6", "ssh_host_key_file": "/keys/web.pub"}])
    assert [(t.name, t.host, t.host_key) for t in s.fleet] == [("host-1", "10.0.0.5", HOST_KEY),
                                                               ("host-2", "10.0.0.6", OTHER_KEY)]


def test_every_droplet_needs_a_pinned_host_key():
    err = problems(hosts=["10.0.0.5", {"host": "10.0.0.6", "ssh_host_key_file": "/keys/web.pub"}], ssh_host_key=None)
    assert "canary:hosts[0].ssh_host_key is required" in err and "hosts[1]" not in err
    s = settings(hosts=[{"host": "10.0.0.6", "ssh_host_key_file": "/keys/web.pub"}], ssh_host_key=None)
    assert s.fleet[0].host_key == OTHER_KEY


def test_host_and_hosts_together_are_refused():
    assert "canary:host and canary:hosts are both set" in problems(host="10.0.0.9", hosts=THREE)


def test_neither_host_nor_hosts_names_both():
    err = problems()
    assert "canary:host is required" in err and "canary:hosts" in err


@pytest.mark.parametrize("entry,message", [
    ({"host": "10.0.0.5;reboot"}, "canary:hosts[1].host = '10.0.0.5;reboot' is not allowed"),
    ({"host": "10.0.0.8", "ssh_port": "70000"}, "canary:hosts[1].ssh_port = '70000' is not allowed"),
    ({"host": "10.0.0.8", "ssh_user": "$(id)"}, "canary:hosts[1].ssh_user = '$(id)' is not allowed"),
    ({"host": "10.0.0.8", "ssh_host_key": "AAAA"}, "canary:hosts[1].ssh_host_key is not allowed"),
    ({"host": "10.0.0.8", "name": "Web 2"}, "canary:hosts[1].name = 'Web 2' is not allowed"),
    ({"host": "10.0.0.8", "name": "web-1"}, "another droplet has that name"),
    ({"host": "10.0.0.5"}, "another entry is that droplet"),
    ({"host": "10.0.0.8", "password": "x"}, "canary:hosts[1] has unknown keys ['password']"),
    (["10.0.0.8"], "canary:hosts[1] must be an address or a map"),
])
def test_a_bad_entry_is_named_with_what_is_allowed(entry, message):
    assert message in problems(hosts=[{"name": "web-1", "host": "10.0.0.5"}, entry])


def test_hosts_must_be_a_list_of_at_most_64():
    assert "canary:hosts must be a list of up to 64 droplets" in problems(hosts="10.0.0.5")
    assert "canary:hosts must be" in problems(hosts=[f"10.0.{i // 250}.{i % 250 + 1}" for i in range(65)])


def test_canary_hosts_and_wave_size():
    s = settings(hosts=THREE, canary_hosts="2", wave_size="1")
    assert (s.canary_hosts, s.wave_size) == (2, 1)
    assert "canary:canary_hosts = 4 is not allowed: an integer from 1 to the number of droplets (3)" in problems(
        hosts=THREE, canary_hosts="4")
    assert "canary:canary_hosts = '0' is not allowed" in problems(hosts=THREE, canary_hosts="0")
    assert "canary:wave_size = '-5' is not allowed" in problems(hosts=THREE, wave_size="-5")


def test_the_provider_reads_only_the_targets():
    values = {"hosts": THREE, "ssh_private_key": KEY, "ssh_host_key": HOST_KEY}
    assert [t.name for t in load_targets(values.get)] == ["web-1", "web-2", "web-3"]
    with pytest.raises(ConfigError, match=r"canary:hosts\[0\].host"):
        load_targets({**values, "hosts": [{"host": "-bad"}]}.get)


# -- waves, gate, failure -------------------------------------------------------------------
def test_waves_start_with_the_canary_droplets():
    names = ["a", "b", "c", "d", "e", "f"]
    assert F.waves(names, 1, 0) == [["a"], ["b", "c", "d", "e", "f"]]
    assert F.waves(names, 2, 2) == [["a", "b"], ["c", "d"], ["e", "f"]]
    assert F.waves(names, 1, 4) == [["a"], ["b", "c", "d", "e"], ["f"]]
    assert F.waves(["a"], 1, 0) == [["a"]]


def entry(name, converged=False, failed=False, **more):
    return {"name": name, "converged": converged, "desired_failed": failed, **more}


def test_a_wave_waits_until_every_droplet_before_it_runs_the_revision():
    assert F.waiting_for([entry("a", True), entry("b", True)]) is None
    why = F.waiting_for([entry("a", True), entry("b", message="holding app:v2 at 25%")])
    assert why == "waiting for b (holding app:v2 at 25%)"
    why = F.waiting_for([entry("a", failed=True, failure_reason="5xx 30% > 5%"), entry("b")])
    assert why == "not promoted: it was rolled back on a (5xx 30% > 5%)"


def test_a_failure_rolls_back_the_droplets_that_run_the_revision_only():
    hosts = [entry("a", True), entry("b", failed=True), entry("c", True), entry("d")]
    assert [e["name"] for e in F.failed(hosts)] == ["b"]
    assert F.to_revert(hosts) == ["a", "c"]
    assert F.failed([entry("a", True), entry("b", True), entry("c")]) == []


def traffic(requests, errors):
    return {"requests": requests, "errors": errors}


def test_the_canary_droplets_evidence_counts_in_total_too():
    # Each saw too few requests to judge (min_requests 20); together they saw 30, 6 of them 5xx.
    canaries = [entry("a", True, canary=True, traffic=traffic(15, 3)),
                entry("b", True, canary=True, traffic=traffic(15, 3)), entry("c")]
    why = F.total_failure(canaries, error_threshold=5, min_requests=20)
    assert why == "the canary droplets a, b together answered 6 of 30 real requests with 5xx (20.0%, threshold 5%)"
    assert F.waiting_for(canaries[:2], 5, 20) == f"not promoted: {why}"
    assert F.total_failure(canaries, error_threshold=25, min_requests=20) is None  # within the threshold
    assert F.total_failure(canaries, error_threshold=5, min_requests=40) is None  # too few in total too
    # One canary droplet: its own analysis judged the same requests.
    assert F.total_failure([entry("a", True, canary=True, traffic=traffic(100, 50))], 5, 20) is None
    assert F.waiting_for([entry("a", True, canary=True, traffic=traffic(100, 0))], 5, 20) is None


# -- a droplet of a later wave ----------------------------------------------------------------
def test_a_droplet_of_a_later_wave_goes_to_the_revision_without_analysis():
    o = P.Observed(production_revision="app:v1#a", production_running=True, canary_revision=None,
                   canary_running=False, split_weight=None)
    d = P.Desired(revision="app:v2#a", steps=(10,), auto_promote=True, retry=False,
                  approved="passed on the canary droplets web-1")
    assert P.plan(d, P.Recorded(), o) == P.Action(P.REPLACE, reason="passed on the canary droplets web-1",
                                                         why=P.Why.APPROVED)
    # ... unless it was rolled back there (with the fleet): blocked, as on one droplet
    blocked = P.plan(d, P.Recorded(failed_revision="app:v2#a", failure_reason="rolled back with the fleet"), o)
    assert blocked.kind == P.BLOCKED and blocked.reason == "rolled back with the fleet"
    # ... and a droplet already there changes nothing
    assert P.plan(d, P.Recorded(), P.Observed("app:v2#a", True, None, False, None)).kind == P.NOOP


# -- a later wave's droplet before its gate opens (Stage) --------------------------------------
def _seen(production="app:v1#a", running=True, canary=None, canary_running=True, split=None) -> P.Observed:
    return P.Observed(production_revision=production, production_running=running, canary_revision=canary,
                      canary_running=bool(canary) and canary_running, split_weight=split)


@pytest.mark.parametrize("r, o, steps, retry, answer", [
    (P.Recorded(), _seen(), (10,), False, P.START),
    (P.Recorded(), _seen(canary="app:v2#a"), (10,), False, P.KEEP),
    (P.Recorded(), _seen(canary="app:v2#a", canary_running=False), (10,), False, P.START),
    (P.Recorded(), _seen(canary="app:v0#a"), (10,), False, P.START),  # a leftover without traffic
    (P.Recorded(), _seen(canary="app:v2#a", split=10), (10,), False, P.SKIP),  # traffic on it: the release's
    (P.Recorded(), _seen(split=-1), (10,), False, P.SKIP),
    (P.Recorded(), _seen(production=None), (10,), False, P.SKIP),
    (P.Recorded(), _seen(running=False), (10,), False, P.SKIP),
    (P.Recorded(), _seen(production="app:v2#a"), (10,), False, P.SKIP),
    (P.Recorded(failed_revision="app:v2#a"), _seen(), (10,), False, P.SKIP),
    (P.Recorded(failed_revision="app:v2#a"), _seen(), (10,), True, P.START),
    (P.Recorded(), _seen(), (0,), False, P.SKIP),
])
def test_a_later_wave_stages_only_what_its_release_would_then_reuse(r, o, steps, retry, answer):
    d = P.Desired(revision="app:v2#a", steps=steps, auto_promote=True, retry=retry)
    assert P.stage(d, r, o)[0] == answer
    if answer == P.START:  # ... and its release, approved, replaces production through it
        approved = P.Desired(revision=d.revision, steps=steps, auto_promote=True, retry=retry, approved="passed")
        staged = P.Observed(o.production_revision, True, d.revision, True, None, True, True)
        assert P.plan(approved, r, staged).kind == P.REPLACE


# -- a canary droplet's verdict opens the gate; its promote step promotes it ------------------
def test_a_wave_goes_once_the_canary_droplet_passed_while_it_is_still_being_promoted():
    assert F.waiting_for([entry("a", passed=True)]) is None
    assert F.waiting_for([entry("a", passed=True), entry("b", True)]) is None
    why = F.waiting_for([entry("a", passed=True), entry("b", message="holding app:v2 at 10%")])
    assert why == "waiting for b (holding app:v2 at 10%)"
    # Canary droplets that passed count in total, as converged ones do.
    canaries = [entry(n, passed=True, canary=True, traffic=traffic(15, 3)) for n in ("a", "b")]
    assert F.waiting_for(canaries, 5, 20).startswith("not promoted: the canary droplets a, b together")


HELD = [P.HOLDING, P.INCONCLUSIVE, P.STABLE, P.PROMOTED, P.ROLLED_BACK]


@pytest.mark.parametrize("phase", HELD)
@pytest.mark.parametrize("passed_weight", [0, 10, 25])
@pytest.mark.parametrize("auto_promote, promote", [(True, False), (False, False), (False, True), (True, True)])
@pytest.mark.parametrize("canary", ["app:v2#a", "app:v0#a"])
def test_a_promotion_is_due_exactly_where_plan_promotes_the_running_canary(phase, passed_weight, auto_promote,
                                                                           promote, canary):
    d = P.Desired(revision="app:v2#a", steps=(10, 25), auto_promote=auto_promote, retry=False, promote=promote)
    r = P.Recorded(phase=phase, canary_revision=canary, canary_weight=25, passed_weight=passed_weight)
    o = P.Observed("app:v1#a", True, canary, True, 25, True, True)
    assert P.due_for_promotion(d, r) == (P.plan(d, r, o).kind == P.PROMOTE)
