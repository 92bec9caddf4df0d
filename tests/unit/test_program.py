"""The program's shape with Pulumi's mocks: which resources, wired how (no engine, no host)."""

import json
import os

import pulumi
import pytest

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"
DIGEST = "sha256:" + "ab" * 32
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIItacbEdtqXT2Ea9U7i3NjqphXIndLeHps5lhqc6CTA1"


class Mocks(pulumi.runtime.Mocks):
    def __init__(self):
        self.resources = []
        self.calls = []
        self.stack_outputs = {}  # the stack's last outputs, as a reference to itself reads them

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(args)
        outs = dict(args.inputs)
        if args.typ == "pulumi:pulumi:StackReference":
            outs["outputs"] = self.stack_outputs
        if args.typ.endswith("canary:Release"):
            outs.update(phase="promoted", production_image="canary-demo:v2", failed_image="",
                        failure_reason="", analysis={"decision": "pass", "series": [1, 2]})
        return [args.name + "-id", outs]

    def call(self, args):
        self.calls.append(args)
        if args.token == "docker:index/getRegistryImage:getRegistryImage":
            return {"name": args.args["name"], "sha256Digest": DIGEST}
        return {}


@pytest.fixture
def run_program(monkeypatch):
    def run(config, preview=False):
        mocks = Mocks()
        pulumi.runtime.set_mocks(mocks, project="canary", stack="test", preview=preview)
        pulumi.runtime.config.CONFIG.set({})  # no config left over from another test
        for k, v in config.items():
            pulumi.runtime.set_config(f"canary:{k}", v if isinstance(v, str) else json.dumps(v))
        from canary import program

        @pulumi.runtime.test
        def registered():  # returns once every registration reached the mocks
            program.main()

        registered()
        return mocks
    return run


BASE = {"image": "canary-demo", "image_tag": "v2", "host": "127.0.0.1", "ssh_port": "2222",
        "ssh_private_key": KEY, "ssh_host_key": HOST_KEY}


def test_site_command_release_and_verdict(run_program):
    mocks = run_program(BASE)
    types = {r.name: r.typ for r in mocks.resources}
    assert types["site"] == "command:remote:Command"
    assert types["release"] == "pulumi-python:dynamic/canary:Release"
    assert types["verdict"] == "pulumi-python:dynamic/canary:Verdict"
    site = next(r for r in mocks.resources if r.name == "site")
    assert HOST_KEY in json.dumps(site.inputs["connection"], default=str)  # pinned
    assert "nginx -t" in site.inputs["create"] and "nginx -s reload" in site.inputs["create"]
    release = next(r for r in mocks.resources if r.name == "release")
    spec = release.inputs["spec"]
    assert spec["image"] == "canary-demo:v2" and spec["steps"] == [10]
    assert release.inputs["environment"] == "test"
    assert "10 % canary (canary-demo:v2" in release.inputs["split_preview"]
    # Credentials never become resource inputs of the release.
    assert KEY not in json.dumps(release.inputs, default=str)


def test_canary_steps_win_over_percentage(run_program):
    mocks = run_program({**BASE, "canary_steps": [10, 25, 50], "canary_percentage": "30"})
    release = next(r for r in mocks.resources if r.name == "release")
    assert release.inputs["spec"]["steps"] == [10, 25, 50]


def test_bad_config_fails_before_any_resource(run_program):
    with pytest.raises(pulumi.RunError) as err:
        run_program({**BASE, "canary_percentage": "101"})
    assert "canary:canary_percentage" in str(err.value)


def _named(mocks, name):
    return next(r for r in mocks.resources if r.name == name)


def test_image_is_pulled_over_ssh_with_the_pinned_key_before_site_and_release(run_program):
    mocks = run_program({**BASE, "image": "registry.example.com/team/odoo"})
    docker_host = _named(mocks, "docker")
    assert docker_host.typ == "pulumi:providers:docker"
    assert docker_host.inputs["host"] == "ssh://root@127.0.0.1:2222"
    opts = json.loads(docker_host.inputs["sshOpts"]) if isinstance(docker_host.inputs["sshOpts"], str) \
        else docker_host.inputs["sshOpts"]
    assert "StrictHostKeyChecking=yes" in opts and "IdentitiesOnly=yes" in opts
    known = next(o for o in opts if o.startswith("UserKnownHostsFile=")).split("=", 1)[1]
    assert open(known).read() == f"[127.0.0.1]:2222 {HOST_KEY}\n"  # the pinned key, nothing else
    key = opts[opts.index("-i") + 1]
    assert open(key).read() == KEY and (os.stat(key).st_mode & 0o777) == 0o600
    assert KEY not in json.dumps(docker_host.inputs, default=str)
    image = _named(mocks, "image")
    assert image.typ == "docker:index/remoteImage:RemoteImage"
    assert image.inputs["name"] == "registry.example.com/team/odoo:v2"
    assert image.inputs["keepLocally"] is True and image.inputs["pullTriggers"] == [DIGEST]
    lookup = next(c for c in mocks.calls if c.token.endswith("getRegistryImage"))
    assert lookup.args["name"] == "registry.example.com/team/odoo:v2"
    release = _named(mocks, "release")
    assert release.inputs["spec"]["digest"] == DIGEST


def test_registry_password_reaches_only_the_provider_as_a_secret(run_program, monkeypatch):
    import canary.program as program
    secret = "pa55-word-xyz"
    monkeypatch.setattr(program, "is_config_secret", lambda key: key == "canary:registry_password")
    mocks = run_program({**BASE, "image": "registry.example.com/team/odoo", "registry_username": "ci",
                         "registry_server": "registry.example.com", "registry_password": secret})
    auth = _named(mocks, "docker").inputs["registryAuth"]
    # A secret, as a whole (the engine's secret signature around its JSON).
    assert auth["4dabf18193072939515e22adb298388d"] == "1b47061264138c4ac30d75fd1eb44270"
    auth = json.loads(auth["value"])
    assert auth[0]["address"] == "registry.example.com" and auth[0]["username"] == "ci"
    # The release's provider process has it too (to mask it in messages), as a secret.
    masked = _named(mocks, "dynamic").inputs["canary:registry_password"]
    assert masked["4dabf18193072939515e22adb298388d"] == "1b47061264138c4ac30d75fd1eb44270"
    for r in mocks.resources:
        if r.name not in ("docker", "dynamic"):
            assert secret not in json.dumps(r.inputs, default=str), r.name


def test_credentials_set_in_plain_text_are_named_for_the_policy_pack(run_program, monkeypatch):
    import canary.program as program
    login = {**BASE, "image": "registry.example.com/team/odoo", "registry_server": "registry.example.com",
             "registry_username": "dop_v1_token", "registry_password": "pa55-word-xyz"}
    monkeypatch.setattr(program, "is_config_secret", lambda key: key == "canary:registry_password")
    release = _named(run_program(login), "release").inputs
    assert release["plain_credentials"] == ["ssh_private_key", "registry_username"]
    assert "dop_v1_token" not in json.dumps(release, default=str)
    monkeypatch.setattr(program, "is_config_secret", lambda key: key in (
        "canary:registry_password", "canary:registry_username", "canary:ssh_private_key"))
    mocks = run_program(login)
    assert _named(mocks, "release").inputs["plain_credentials"] == []
    auth = _named(mocks, "docker").inputs["registryAuth"]
    assert auth["4dabf18193072939515e22adb298388d"] == "1b47061264138c4ac30d75fd1eb44270"


def test_image_already_on_the_host_is_not_looked_up(run_program):
    mocks = run_program({**BASE, "image_pull": "false"})
    assert not [c for c in mocks.calls if c.token.endswith("getRegistryImage")]
    image = _named(mocks, "image")
    assert image.inputs["name"] == "canary-demo:v2" and not image.inputs.get("pullTriggers")
    assert _named(mocks, "release").inputs["spec"]["digest"] == ""


def test_named_volumes_are_kept_on_destroy_and_the_canary_may_have_its_own(run_program):
    mocks = run_program({**BASE, "volumes": ["odoo-data:/var/lib/odoo", "/srv/addons:/mnt/addons:ro"],
                         "canary_volumes": ["odoo-canary-data:/var/lib/odoo"]})
    vols = {r.name: r for r in mocks.resources if r.typ == "docker:index/volume:Volume"}
    assert set(vols) == {"volume-odoo-data", "volume-odoo-canary-data"}  # host paths are no volumes
    spec = _named(mocks, "release").inputs["spec"]
    assert spec["canary_volumes"] == ["odoo-canary-data:/var/lib/odoo"]



def test_a_preview_says_what_the_release_will_do_as_a_known_input(run_program):
    mocks = run_program(BASE, preview=True)
    release = next(r for r in mocks.resources if r.name == "release")
    assert release.inputs["planned"] == "first deploy: canary-demo:v2 straight to production (nothing runs there yet)"
    me = next(r for r in mocks.resources if r.typ == "pulumi:pulumi:StackReference")
    assert me.name == "organization/canary/test"  # a reference to this very stack


def test_an_update_reads_no_stack_reference(run_program):
    # (the stack's checkpoint is being written meanwhile; the provider says the words)
    mocks = run_program(BASE)
    assert not [r for r in mocks.resources if r.typ == "pulumi:pulumi:StackReference"]


def test_the_release_knows_its_own_urn_for_its_progress_lines(run_program):
    from canary.provider import RELEASE_TYPE
    mocks = run_program(BASE)
    release = next(r for r in mocks.resources if r.name == "release")
    assert release.typ == RELEASE_TYPE
    assert release.inputs["log_urn"] == f"urn:pulumi:test::canary::{RELEASE_TYPE}::release"


# -- a fleet --------------------------------------------------------------------------------
FLEET = {**{k: v for k, v in BASE.items() if k != "host"},
         "hosts": [{"name": "web-1", "host": "10.0.0.5"}, {"name": "web-2", "host": "10.0.0.6"},
                   {"name": "web-3", "host": "10.0.0.7", "ssh_port": 2200}], "wave_size": "1"}


@pytest.fixture
def journals(monkeypatch):
    """The droplets' journals as the program's pre-flight reads them (no SSH here)."""
    from canary.remote import preflight
    read = {}

    def fake(targets, app, stack):
        read.update(targets=[t.name for t in targets], app=app, stack=stack)
        return {t.name: ({"phase": "rolled_back"} if t.name == "web-2" else {}) for t in targets}
    monkeypatch.setattr(preflight, "journals", fake)
    return read


def test_a_fleet_is_resources_per_droplet_in_waves_and_one_fleet_verdict(run_program, journals):
    mocks = run_program(FLEET)
    names = {r.name: r for r in mocks.resources}
    for n in ("web-1", "web-2", "web-3"):
        assert {f"docker-{n}", f"image-{n}", f"site-{n}", f"release-{n}"} <= set(names)
    assert names["docker-web-3"].inputs["host"] == "ssh://root@10.0.0.7:2200"
    assert "10.0.0.6" in json.dumps(names["site-web-2"].inputs["connection"], default=str)
    assert "verdict" not in names and names["fleet"].typ == "pulumi-python:dynamic/canary:Fleet"
    assert journals == {"targets": ["web-1", "web-2", "web-3"], "app": "odoo", "stack": "test"}
    releases = [names[f"release-{n}"] for n in ("web-1", "web-2", "web-3")]
    assert [r.inputs["host_name"] for r in releases] == ["web-1", "web-2", "web-3"]
    assert releases[1].inputs["host_record"] == {"phase": "rolled_back"}  # the journal, for the diff
    # The canary droplet has no gate; each later wave's gate is every droplet before it.
    assert "gate" not in releases[0].inputs or releases[0].inputs["gate"] is None
    assert [e["name"] for e in releases[1].inputs["gate"]] == ["web-1"]
    assert [e["name"] for e in releases[2].inputs["gate"]] == ["web-1", "web-2"]
    assert [e["name"] for e in names["fleet"].inputs["hosts"]] == ["web-1", "web-2", "web-3"]


def test_a_canary_droplet_with_later_waves_is_promoted_by_a_step_of_its_own(run_program, journals):
    mocks = run_program(FLEET)
    names = {r.name: r for r in mocks.resources}
    # Its release ends at the verdict (which the later waves' gate reads); promote-web-1,
    # after it and beside the later waves, promotes it with the release's revision key.
    assert names["release-web-1"].inputs["promoted_by"] == "promote-web-1"
    assert not names["release-web-2"].inputs.get("promoted_by")
    promote = names["promote-web-1"]
    assert promote.typ == "pulumi-python:dynamic/canary:Promotion"
    assert promote.inputs["host_name"] == "web-1" and promote.inputs["release"]["phase"] == "promoted"
    assert "pulumi:providers:pulumi-python::dynamic-web-1::" in promote.provider
    assert not [n for n in names if n.startswith("promote-") and n != "promote-web-1"]
    # The later waves' gate is the release's (its verdict); Fleet and the stack's outputs
    # read web-1 from the promote step.
    assert [e["name"] for e in names["release-web-2"].inputs["gate"]] == ["web-1"]
    assert names["fleet"].inputs["hosts"][0]["name"] == "web-1"


@pytest.mark.parametrize("config", [{"canary_hosts": "3"},  # no later wave
                                    # production's own settings untested by the canary: the
                                    # later waves wait until web-1's production runs them
                                    {"canary_env": {"DB_NAME": "odoo_canary"}},
                                    {"canary_volumes": ["odoo-canary-data:/var/lib/odoo"]}])
def test_no_promote_step_without_a_later_wave_or_when_the_canary_ran_other_settings(run_program, journals, config):
    mocks = run_program({**FLEET, **config})
    names = {r.name: r for r in mocks.resources}
    assert not [n for n in names if n.startswith("promote-")], names
    assert not names["release-web-1"].inputs.get("promoted_by")


def test_a_droplet_that_cannot_be_reached_fails_the_fleet_before_any_resource(run_program, monkeypatch):
    from canary.remote import preflight

    def down(targets, app, stack):
        raise preflight.Unreachable("cannot reach every droplet, so nothing was changed on any of them: "
                                    "web-2 (10.0.0.6) port 22: connection refused")
    monkeypatch.setattr(preflight, "journals", down)
    with pytest.raises(pulumi.RunError, match=r"web-2 \(10.0.0.6\) port 22: connection refused"):
        run_program(FLEET)


def test_one_droplet_keeps_its_resource_names_and_reads_no_journal(run_program, journals):
    mocks = run_program(BASE)
    assert {"docker", "image", "site", "release", "verdict"} <= {r.name for r in mocks.resources}
    assert not journals
    release = _named(mocks, "release")
    assert release.inputs["host_name"] == "" and not release.inputs.get("gate")


def test_the_sites_share_one_command_provider_declared_beside_the_image_step(run_program, journals):
    # Declared once the Docker provider is up, the engine starts it while the image step
    # runs, not between the image and the release. One process for every droplet.
    for config, sites in ((BASE, ["site"]), (FLEET, ["site-web-1", "site-web-2", "site-web-3"])):
        mocks = run_program(config)
        own = [r for r in mocks.resources if r.typ == "pulumi:providers:command"]
        assert [r.name for r in own] == ["command"]
        order = [r.name for r in mocks.resources]
        first = "docker" if config is BASE else "docker-web-1"
        assert order.index(first) < order.index("command") < min(order.index(s) for s in sites)
        for name in sites:
            assert "pulumi:providers:command::command::" in _named(mocks, name).provider
    # Aliased to the default provider of earlier versions: their stacks keep their sites.
    from canary import program
    assert program.default_provider_name("1.2.1") == "default_1_2_1"
    assert program.default_provider_name("1.3.0-alpha.1") == "default_1_3_0_alpha_1"


def test_each_fleet_droplet_releases_from_a_dynamic_provider_process_of_its_own(run_program, journals):
    # One shared process serves 4 calls at a time, under one interpreter lock.
    mocks = run_program({**FLEET, "notify_webhook": "https://hooks.example/x"})
    names = {r.name: r for r in mocks.resources}
    for n in ("web-1", "web-2", "web-3"):
        own = names[f"dynamic-{n}"]
        assert own.typ == "pulumi:providers:pulumi-python"
        # It is given the config the release provider reads, and nothing else.
        assert json.loads(own.inputs["canary:hosts"]) == FLEET["hosts"]
        assert own.inputs["canary:ssh_private_key"] == KEY
        assert own.inputs["canary:notify_webhook"] == "https://hooks.example/x"
        assert not {k for k in own.inputs if k.startswith("canary:")} - {
            f"canary:{k}" for k in ("hosts", "ssh_port", "ssh_private_key", "ssh_host_key", "notify_webhook")}
        assert f"pulumi:providers:pulumi-python::dynamic-{n}::" in names[f"release-{n}"].provider
    # The verdict of the fleet runs in the canary droplet's process: no process to start at the end.
    assert "pulumi:providers:pulumi-python::dynamic-web-1::" in names["fleet"].provider


def test_one_droplet_releases_from_an_explicit_provider_declared_once_its_docker_provider_is_up(run_program):
    # The engine starts it when declared, beside the image step: not only once the
    # release registers, after the image and the site, as it would a default provider.
    mocks = run_program(BASE)
    own = [r for r in mocks.resources if r.typ == "pulumi:providers:pulumi-python"]
    assert [r.name for r in own] == ["dynamic"]
    assert own[0].inputs["canary:host"] == "127.0.0.1" and own[0].inputs["canary:ssh_private_key"] == KEY
    assert not {k for k in own[0].inputs if k.startswith("canary:")} - {
        f"canary:{k}" for k in ("host", "ssh_port", "ssh_private_key", "ssh_host_key")}
    order = [r.name for r in mocks.resources]
    assert order.index("docker") < order.index("image") < order.index("dynamic")
    for name in ("release", "verdict"):  # the verdict too: no second process at the end
        assert "pulumi:providers:pulumi-python::dynamic::" in _named(mocks, name).provider
