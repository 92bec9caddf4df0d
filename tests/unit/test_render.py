"""Rendered nginx files pass the real `nginx -t`, with and without the split file."""

import shutil
import subprocess

import pytest

from canary import render
from canary.config import load

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIItacbEdtqXT2Ea9U7i3NjqphXIndLeHps5lhqc6CTA1"


def settings(**over):
    values = {"image": "odoo-erp", "image_tag": "v2", "host": "h", "ssh_private_key": KEY,
              "ssh_host_key": HOST_KEY, "listen_port": "18088", **over}
    return load(values.get, "test")


def nginx_test(tmp_path, site: str, split: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "logs").mkdir(exist_ok=True)
    (tmp_path / "site.conf").write_text(site.replace("/var/log/nginx", str(tmp_path / "logs")))
    if split is not None:
        (tmp_path / "split.conf").write_text(split)
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;\n"
                    "events {}\nhttp {\n"
                    + (f"include {tmp_path}/split.conf;\n" if split is not None else "")
                    + f"include {tmp_path}/site.conf;\n}}\n")
    return subprocess.run(["nginx", "-t", "-c", str(conf), "-p", str(tmp_path)],
                          capture_output=True, text=True)


needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx not installed")


@needs_nginx
@pytest.mark.parametrize("routing", ["cookie", "ip_hash", "hash"])
@pytest.mark.parametrize("weight", [None, 1, 10, 50, 99, 100])
def test_site_is_valid_with_and_without_split(tmp_path, routing, weight):
    s = settings(routing=routing)
    split = None if weight is None else render.split_config(
        render.SplitSpec.from_settings(s), weight, s.full_image)
    r = nginx_test(tmp_path, render.site_config(s), split)
    assert r.returncode == 0, r.stderr


def test_split_weights_and_header():
    s = settings()
    text = render.split_config(render.SplitSpec.from_settings(s), 25, "odoo-erp:v2")
    assert "weight=75;" in text and "weight=25;" in text
    assert "# 25 % canary (odoo-erp:v2 on :8070)" in text
    with pytest.raises(ValueError):
        render.split_config(render.SplitSpec.from_settings(s), 0, "x")


def test_site_script_quotes_the_content():
    s = settings(server_name="erp.example.com")
    script = render.site_apply_script(s)
    assert "printf '%s' '" in script  # one single-quoted argument
    assert "nginx -t" in script and "flock" in script
