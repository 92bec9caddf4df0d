"""The image from a private registry through pulumi-docker, through the real CLI: a pull
with credentials, the release keyed by the digest (a moved tag is a new canary, a new tag
of the same digest is none), failed pulls that change nothing, and data volumes that
outlive `pulumi destroy`. The registry is the test host's (password auth, plain HTTP on
127.0.0.1:5000)."""

import json
import os
import subprocess

import pytest
from pulumi import automation as auto

from .harness import (REGISTRY, REGISTRY_CONFIG, TESTHOST, TESTHOST_DIR, Load, container_id,
                      containers, served_versions, sh, split_exists)

REPO = f"{REGISTRY}/canary-demo"


def registry_digest(tag: str) -> str:
    """The manifest digest the registry serves for the tag (as `docker pull` records it)."""
    password = (TESTHOST_DIR / "registry_password").read_text().strip()
    out = subprocess.run(
        ["curl", "-sfI", "-u", f"canary:{password}",
         "-H", "Accept: application/vnd.docker.distribution.manifest.v2+json",
         "-H", "Accept: application/vnd.oci.image.manifest.v1+json",
         f"http://{REGISTRY}/v2/canary-demo/manifests/{tag}"],
        capture_output=True, text=True, check=True).stdout
    return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                if line.lower().startswith("docker-content-digest:"))


def push(local_image: str, tag: str) -> str:
    sh(f"bash {TESTHOST} push {local_image} {tag}")
    return registry_digest(tag)


def config_image(name: str) -> str:
    return sh(f"docker inspect -f '{{{{.Config.Image}}}}' {name}").strip()


def site_state() -> str:
    return sh("cat /etc/nginx/sites-enabled/odoo.conf; "
              "ls -l --time-style=+%s.%N /etc/nginx/sites-enabled /etc/nginx/conf.d")


@pytest.fixture
def registry_deployment(deployment):
    deployment.set(**REGISTRY_CONFIG)
    return deployment


def test_pull_with_credentials_runs_the_image_by_digest(registry_deployment):
    d = registry_deployment
    assert sh(f"docker image ls -q {REPO}").strip() == "", "the host starts without the image"
    d.up()
    out = d.outputs()
    digest = registry_digest("v1")
    assert out["phase"] == "promoted", out["message"]
    assert out["image"] == f"{REPO}:v1" and out["image_digest"] == digest
    assert out["production_image"] == f"{REPO}:v1" and out["production_digest"] == digest
    # Pulled onto the host, and production runs exactly that digest.
    assert config_image("odoo") == f"{REPO}@{digest}"
    assert digest in sh(f"docker image inspect -f '{{{{.RepoDigests}}}}' {REPO}:v1")
    assert served_versions(20) == {"canary-demo v1": 20}
    # The password is a secret in the state: never in plain text.
    password = (TESTHOST_DIR / "registry_password").read_text().strip()
    assert password not in d.export()
    assert password not in "\n".join(d.log)
    d.preview(expect_no_changes=True)


@pytest.mark.parametrize("change,needle", [
    ({"registry_password_file": "WRONG"}, "401"),
    ({"image_tag": "no-such-tag"}, "404"),
    ({"image": "127.0.0.1:5999/canary-demo", "registry_server": "127.0.0.1:5999"}, "connection refused"),
])
def test_failed_pull_fails_before_any_change(registry_deployment, tmp_path, change, needle):
    d = registry_deployment
    d.up()  # v1 in production
    before = (container_id("odoo"), site_state())
    if change.get("registry_password_file") == "WRONG":
        wrong = tmp_path / "wrong-password"
        wrong.write_text("not-the-password\n")
        change = {"registry_password_file": str(wrong)}
    d.set(**{"image_tag": "v2", **change})
    with pytest.raises(auto.CommandError) as failed:
        d.up()
    message = str(failed.value)
    assert "cannot read" in message and "canary:registry_username" in message, message
    assert needle in message.lower(), message
    # Nothing changed on the host: same production container, same site, no split file,
    # the new image not pulled.
    assert (container_id("odoo"), site_state()) == before
    assert not split_exists()
    assert sh(f"docker image ls -q {REPO}:v2").strip() == ""
    assert served_versions(20) == {"canary-demo v1": 20}


def test_moved_tag_is_a_new_canary_and_a_new_tag_of_the_same_digest_is_not(registry_deployment):
    d = registry_deployment
    first = push("canary-demo:v1", "moving")
    d.set(image_tag="moving")
    d.up()
    production = container_id("odoo")
    # The same digest under another tag: no canary, nothing restarted; outputs say so.
    assert push("canary-demo:v1", "same-as-moving") == first
    d.set(image_tag="same-as-moving")
    seen = len(d.log)
    d.up()
    out = d.outputs()
    assert container_id("odoo") == production and not split_exists()
    assert not any("canary container" in line for line in d.log[seen:]), d.log[seen:]
    assert out["image"] == f"{REPO}:same-as-moving" and out["production_digest"] == first
    assert out["production_image"] == f"{REPO}:same-as-moving"
    # The tag moves to v2's image: preview shows the new digest, up analyses a canary.
    moved = push("canary-demo:v2", "moving")
    assert moved != first
    d.set(image_tag="moving")
    assert moved in d.preview(diff=True).stdout
    with Load() as load:
        d.up()
    out = d.outputs()
    assert out["phase"] == "promoted", out["message"]
    assert out["production_digest"] == moved and out["analysis"]["decision"] == "pass"
    assert config_image("odoo") == f"{REPO}@{moved}"
    assert served_versions(20) == {"canary-demo v2": 20}
    assert load.failures == 0, load.statuses


def test_destroy_leaves_the_data_volumes_and_the_canary_has_its_own(registry_deployment):
    d = registry_deployment
    data, canary_data = "canary-e2e-data", "canary-e2e-canary-data"
    sh(f"docker volume rm -f {data} {canary_data}")
    d.set(volumes=json.dumps([f"{data}:/data"]), canary_volumes=json.dumps([f"{canary_data}:/data"]))
    try:
        d.up()
        mountpoint = sh(f"docker volume inspect -f '{{{{.Mountpoint}}}}' {data}").strip()
        with open(os.path.join(mountpoint, "precious"), "w") as f:
            f.write("customer data\n")
        d.set(image_tag="v2", auto_promote="false")
        d.up()
        assert d.outputs()["phase"] == "holding"
        mounts = lambda name: sh(  # noqa: E731
            f"docker inspect -f '{{{{range .Mounts}}}}{{{{.Name}}}}:{{{{.Destination}}}} {{{{end}}}}' {name}").split()
        assert mounts("odoo") == [f"{data}:/data"]
        assert mounts("odoo-canary") == [f"{canary_data}:/data"]
        d.destroy()
        assert containers() == {}
        volumes = sh("docker volume ls -q").split()
        assert data in volumes and canary_data in volumes
        assert open(os.path.join(mountpoint, "precious")).read() == "customer data\n"
    finally:
        sh(f"docker rm -f odoo odoo-canary >/dev/null 2>&1; docker volume rm -f {data} {canary_data}", check=False)
