"""Secrets: masking, the keyed revision digest, secret inputs of the release (pure)."""

import json
from dataclasses import replace


from canary.config import load
from canary.redact import MASK, Redactor, RedactingNotifier
from canary.spec import ReleaseSpec, new_revision_key

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\n-----END OPENSSH PRIVATE KEY-----\n"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIItacbEdtqXT2Ea9U7i3NjqphXIndLeHps5lhqc6CTA1"
BASE = {"image": "odoo-erp", "image_tag": "prod-abc1234", "host": "165.227.10.178",
        "ssh_private_key": KEY, "ssh_host_key": HOST_KEY}


def spec(secret_keys=frozenset(), **over):
    values = {**BASE, **over}
    return ReleaseSpec.from_settings(load(values.get, "production", secret_keys))


def test_redactor_masks_every_secret_and_its_quoted_forms():
    r = Redactor(["hunter2-very-secret", "it's a p@ss", None, "", "on"], public=["odoo"])
    text = "log: PASSWORD=hunter2-very-secret; sh -c 'it'\"'\"'s a p@ss' and \"it's a p@ss\" on odoo"
    out = r.text(text)
    assert "hunter2" not in out and "p@ss" not in out and out.count(MASK) == 3
    assert out.endswith(" on odoo")  # short and public values are left alone
    assert r.value({"a": ["x hunter2-very-secret"], "n": 3}) == {"a": [f"x {MASK}"], "n": 3}
    assert Redactor(["odoo"], public=["odoo"]).text("odoo-canary") == "odoo-canary"


def test_redactor_masks_each_line_of_a_multiline_secret():
    r = Redactor([KEY])
    assert "b3BlbnNzaC1rZXktdjEAAAAABG5vbmU" not in r.text("oops b3BlbnNzaC1rZXktdjEAAAAABG5vbmU")


def test_notifications_are_masked():
    sent = []

    class Inner:
        def send(self, event, text, analysis=None):
            sent.append((event, text, analysis))

    RedactingNotifier(Inner(), Redactor(["s3cr3t-value"])).send(
        "rolled_back", "exited: s3cr3t-value", {"reason": "saw s3cr3t-value"})
    assert "s3cr3t-value" not in json.dumps(sent)


def test_secret_values_only_when_set_with_secret():
    plain = spec(env={"PASSWORD": "hunter2-very-secret"}, metric_command="psql -W pw-1234", metric_max="80")
    assert plain.secret_values() == []
    secret = spec(frozenset({"env", "metric_command"}), env={"PASSWORD": "hunter2-very-secret"},
                  canary_env={"DB": "canary-db"}, metric_command="psql -W pw-1234", metric_max="80")
    assert secret.secret_inputs == ("env", "canary_env", "metric_command")
    assert set(secret.secret_values()) == {"hunter2-very-secret", "canary-db", "psql -W pw-1234"}
    assert "odoo" in secret.public_values() and "8069" in secret.public_values()


def test_revision_digest_is_keyed():
    s = spec(env={"PASSWORD": "hunter2"})
    key = new_revision_key()
    keyed = s.keyed(key)
    # The plain hash of the env is not what is recorded: without the key, no offline guessing.
    assert keyed.revision != s.revision and keyed.revision.startswith("odoo-erp:prod-abc1234#")
    assert len(keyed.revision.split("#")[1]) == 16 and len(s.revision.split("#")[1]) == 8
    assert keyed.revision == s.keyed(key).revision  # stable for one key
    assert keyed.revision != s.keyed(new_revision_key()).revision
    assert spec(env={"PASSWORD": "hunter3"}).keyed(key).revision != keyed.revision
    # The key never becomes an input (nor, through the public spec, an output).
    assert key not in json.dumps(keyed.to_inputs()) and key not in repr(keyed)


def test_revisions_recorded_before_the_key_map_to_the_keyed_form():
    s = spec(env={"PASSWORD": "hunter2"})
    keyed = s.keyed(new_revision_key())
    assert keyed.canonical(s.revision) == keyed.revision
    # The same container spec with another image (the previous production): mapped too.
    old = "odoo-erp:prod-0000000#" + s.legacy_digest
    assert keyed.canonical(old) == "odoo-erp:prod-0000000#" + keyed.revision.split("#")[1]
    # Another container spec, an adopted container, a keyed revision, none: unchanged.
    other = spec(env={"PASSWORD": "other"}).revision
    for rev in (other, "odoo:16#adopted", keyed.revision, None, ""):
        assert keyed.canonical(rev) == rev


def test_provider_keys_the_spec_and_rekeys_legacy_records():
    from canary import provider
    s = spec(env={"PASSWORD": "hunter2"})
    inputs = {**s.to_inputs()}
    olds = {"spec": provider._public_spec(inputs), "production_revision": s.revision,
            "failed_revision": "odoo-erp:bad#" + s.legacy_digest, "previous_revision": "x:y#00000000"}
    keyed_inputs, rekeyed = provider._with_key(inputs, olds)
    keyed = ReleaseSpec.from_inputs(keyed_inputs)
    assert rekeyed["production_revision"] == keyed.revision
    assert rekeyed["failed_revision"] == "odoo-erp:bad#" + keyed.revision.split("#")[1]
    assert rekeyed["previous_revision"] == "x:y#00000000"
    # A keyed stack keeps its key.
    again, _ = provider._with_key(inputs, {**olds, "revision_key": keyed_inputs["revision_key"]})
    assert again["revision_key"] == keyed_inputs["revision_key"]


def test_public_spec_holds_no_env_and_no_metric_command():
    from canary import provider
    s = spec(frozenset({"metric_command"}), env={"PASSWORD": "hunter2"}, metric_command="psql -W pw-1234",
             metric_max="80")
    public = json.dumps(provider._public_spec(s.to_inputs()))
    assert "hunter2" not in public and "pw-1234" not in public
    # The provider puts the metric command, a release input of its own, back into the spec.
    props = {"spec": {**s.to_inputs(), "analysis": {**s.to_inputs()["analysis"], "metric_command": None}},
             "env": {"PASSWORD": "hunter2"}, "canary_env": {}, "metric_command": "psql -W pw-1234"}
    assert ReleaseSpec.from_inputs(provider._spec_inputs(props)).analysis.metric_command == "psql -W pw-1234"


from tests.unit.test_program import BASE as PROGRAM_BASE, run_program  # noqa: E402,F401


def test_metric_command_is_a_release_input_of_its_own(run_program):  # noqa: F811  (the fixture)
    # (the mocks keep config set by earlier tests: set what matters)
    mocks = run_program({**PROGRAM_BASE, "metric_command": "psql -W pw-1234", "metric_max": "80",
                         "canary_percentage": "10", "canary_steps": ""})
    release = next(r for r in mocks.resources if r.name == "release")
    assert release.inputs["metric_command"] == "psql -W pw-1234"
    assert "pw-1234" not in json.dumps(release.inputs["spec"])
    assert release.inputs["spec"]["secret_inputs"] == []


def test_pr_preview_never_hands_secrets_to_a_fork():
    import yaml

    from tests.e2e.harness import ROOT
    text = (ROOT / ".github/workflows/preview.yml").read_text()
    doc = yaml.safe_load(text)
    triggers = doc[True]  # YAML 1.1 reads the key `on` as True
    assert list(triggers) == ["pull_request"]
    job = doc["jobs"]["preview"]
    assert job["if"].replace(" ", "") == "github.event.pull_request.head.repo.full_name==github.repository"
    assert "secrets." not in json.dumps(job.get("env", {}))
    # Secrets reach only the deploy key and the preview itself, after the dependencies are
    # installed (a PR's requirements never run with them).
    names = [s.get("name") or s.get("uses") for s in job["steps"]]
    with_secrets = [n for s, n in zip(job["steps"], names) if "secrets." in json.dumps(s)]
    assert with_secrets == ["Deploy key", "Preview production"]
    assert names.index("Install the program's dependencies") < names.index("Deploy key")


def test_policy_refuses_promotion_without_analysis_on_production():
    import importlib.util
    import sys
    import types

    from tests.e2e.harness import ROOT
    # The pack registers itself on import: load it with a stand-in PolicyPack.
    import pulumi_policy
    captured = {}
    fake = types.ModuleType("pulumi_policy")
    fake.__dict__.update(pulumi_policy.__dict__)
    fake.PolicyPack = lambda **kw: captured.update(kw)
    sys.modules["pulumi_policy"] = fake
    try:
        spec_ = importlib.util.spec_from_file_location("canary_policy", ROOT / "policy/__main__.py")
        module = importlib.util.module_from_spec(spec_)
        spec_.loader.exec_module(module)
    finally:
        sys.modules["pulumi_policy"] = pulumi_policy

    def violations(environment, steps):
        args = types.SimpleNamespace(resource_type=module.RELEASE, props={
            "environment": environment, "spec": {"steps": steps, "auto_promote": True,
                                                 "analysis": {"duration": 900}}})
        out = []
        module.production_promotions_are_analysed(args, out.append)
        return out

    assert violations("production", [100]) and "without any analysis" in violations("production", [100])[0]
    assert not violations("production", [10]) and not violations("production", [10, 50, 100])
    assert not violations("staging", [100])
    assert "production-promotions-are-analysed" in [p.name for p in captured["policies"]]


def test_reports_mask_secrets_and_cover_a_canary_that_never_started(tmp_path):
    from canary import redact
    from canary.analysis import report
    redact.install(Redactor(["hunter2-very-secret"]))
    try:
        path = report.write(str(tmp_path), "production", "odoo:v2", {
            "decision": "fail", "weight": 0,
            "reason": "container odoo-canary exited before it became healthy: PASSWORD=hunter2-very-secret"},
            outcome="fail", threshold=5)
    finally:
        redact.install(Redactor())
    texts = [p.read_text() for p in tmp_path.iterdir()]
    assert len(texts) == 2 and path.endswith(".json")
    assert all("hunter2" not in t and "[secret]" in t for t in texts)


# -- the image keyed by its registry digest ------------------------------------------------------
DIGEST_A, DIGEST_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def test_same_digest_under_another_tag_is_the_same_revision():
    key = new_revision_key()
    a = replace(spec(), digest=DIGEST_A).keyed(key)
    retagged = replace(spec(), image="odoo-erp:prod-retagged", digest=DIGEST_A).keyed(key)
    moved = replace(spec(), digest=DIGEST_B).keyed(key)
    assert a.revision == retagged.revision and a.revision.startswith("odoo-erp@" + DIGEST_A + "#")
    assert moved.revision != a.revision  # the tag moved to a new digest: a new canary
    assert a.ref == "odoo-erp@" + DIGEST_A and a.container("canary").image == a.ref
    assert a.container("production").labels["canary.image"] == "odoo-erp:prod-abc1234"


def test_a_registry_port_is_not_taken_for_a_tag():
    s = replace(spec(), image="127.0.0.1:5000/canary-demo:v1", digest=DIGEST_A)
    assert s.repository == "127.0.0.1:5000/canary-demo" and s.ref == "127.0.0.1:5000/canary-demo@" + DIGEST_A


def test_revisions_recorded_by_tag_map_to_the_digest_form():
    """A stack deployed before images were keyed by digest: its production revision names
    the tag; the first update with the digest is no change on the host."""
    key = new_revision_key()
    by_tag = spec().keyed(key)  # no digest: the revision names the tag
    by_digest = replace(by_tag, digest=DIGEST_A)
    assert by_digest.canonical(by_tag.revision) == by_digest.revision
    assert by_digest.canonical(spec().revision) == by_digest.revision  # plain hash, before the key
    other_tag = "odoo-erp:prod-0000000#" + by_tag.revision.split("#")[1]
    assert by_digest.canonical(other_tag) == other_tag  # another tag's digest is unknown


def test_the_canary_may_mount_its_own_volume():
    s = replace(spec(), volumes=("odoo-data:/var/lib/odoo", "/srv/addons:/mnt/addons:ro"),
                canary_volumes=("odoo-canary-data:/var/lib/odoo",))
    assert s.container("production").volumes == ("odoo-data:/var/lib/odoo", "/srv/addons:/mnt/addons:ro")
    assert s.container("canary").volumes == ("/srv/addons:/mnt/addons:ro", "odoo-canary-data:/var/lib/odoo")
    assert ReleaseSpec.from_inputs(s.to_inputs()) == s
