"""The program's shape with Pulumi's mocks: which resources, wired how (no engine, no host)."""

import json

import pulumi
import pytest

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIItacbEdtqXT2Ea9U7i3NjqphXIndLeHps5lhqc6CTA1"


class Mocks(pulumi.runtime.Mocks):
    def __init__(self):
        self.resources = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(args)
        outs = dict(args.inputs)
        if args.typ.endswith("canary:Release"):
            outs.update(phase="promoted", production_image="canary-demo:v2", failed_image="",
                        failure_reason="", analysis={"decision": "pass", "series": [1, 2]})
        return [args.name + "-id", outs]

    def call(self, args):
        return {}


@pytest.fixture
def run_program(monkeypatch):
    def run(config):
        mocks = Mocks()
        pulumi.runtime.set_mocks(mocks, project="canary", stack="test", preview=False)
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
