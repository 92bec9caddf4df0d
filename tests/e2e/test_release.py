"""The release contract through the real CLI: promote, roll back, hold, instant rollback,
first deploy and adoption."""

import time

import pytest
from pulumi import automation as auto

from .harness import (Load, container_id, containers, served_versions, sh, split_exists)


def promote_v2(d):
    d.up()  # first deploy: v1 straight to production
    d.set(image_tag="v2")
    with Load() as load:
        d.up()
    return load


def test_promote_then_preview_is_clean(deployment):
    d = deployment
    load = promote_v2(d)
    out = d.outputs()
    assert out["phase"] == "promoted", out["message"]
    assert out["production_image"] == "canary-demo:v2"
    assert out["previous_image"] == "canary-demo:v1"
    assert out["canary_image"] == "" and out["canary_weight"] == 0
    assert out["analysis"]["decision"] == "pass"
    assert out["analysis"]["canary"]["requests"] > 0, "the analysis saw real traffic"
    assert containers() == {"odoo": "canary-demo:v2"}
    assert not split_exists()
    assert served_versions(50) == {"canary-demo v2": 50}
    # Real users, GETs and POSTs, during the whole promotion: nothing dropped.
    assert load.failures == 0, load.statuses
    assert load.backends["localhost:8070"] > 0, "the canary served some users"
    # The stack matches the host: a preview proposes nothing, outputs included.
    before = d.outputs()
    d.preview(expect_no_changes=True)
    assert d.outputs() == before
    # Progress was shown while analysing.
    assert any("check 1/3" in line for line in d.log)


def test_rollback_is_recorded_and_blocks_the_bad_image(deployment):
    d = deployment
    promote_v2(d)
    d.set(image_tag="broken")
    with Load() as load, pytest.raises(auto.CommandError) as failed:
        d.up()
    message = str(failed.value)
    assert "rolled back" in message and "threshold 5%" in message, message
    out = d.outputs()
    assert out["phase"] == "rolled_back"
    assert out["failed_image"] == "canary-demo:broken"
    assert out["production_image"] == "canary-demo:v2"
    assert containers() == {"odoo": "canary-demo:v2"}
    assert not split_exists()
    assert served_versions(50) == {"canary-demo v2": 50}
    assert load.failures == 0, load.statuses

    # The same config again: fails fast with the recorded reason, starts no canary.
    since = sh("date +%s").strip()
    start = time.monotonic()
    with pytest.raises(auto.CommandError) as again:
        d.up()
    assert "was rolled back" in str(again.value) and "retry" in str(again.value)
    assert time.monotonic() - start < 30
    created = sh(f"docker events --since {since} --until $(date +%s) --filter event=create "
                 "--format '{{.Actor.Attributes.name}}'")
    assert "odoo-canary" not in created

    # An explicit retry analyses it again (and rolls it back again).
    d.set(retry="true")
    with pytest.raises(auto.CommandError):
        d.up()
    assert "odoo-canary" in sh(f"docker events --since {since} --until $(date +%s) "
                               "--filter event=create --format '{{.Actor.Attributes.name}}'")
    assert containers() == {"odoo": "canary-demo:v2"}


def test_sick_canary_is_rolled_back_on_real_traffic(deployment):
    """Health endpoint fine, real pages fail: only the access-log analysis catches it."""
    d = deployment
    d.up()
    d.set(image_tag="sick")
    with Load(rate=60), pytest.raises(auto.CommandError) as failed:
        d.up()
    assert "real traffic" in str(failed.value), str(failed.value)
    assert containers() == {"odoo": "canary-demo:v1"}


def test_instant_rollback_to_previous_image_skips_analysis(deployment):
    d = deployment
    promote_v2(d)
    analysed = d.outputs()["analysis"]
    d.set(image_tag="v1")
    with Load() as load:
        start = time.monotonic()
        d.up()
        seconds = time.monotonic() - start
    out = d.outputs()
    print(f"instant rollback took {seconds:.1f}s")
    assert out["production_image"] == "canary-demo:v1"
    assert out["previous_image"] == "canary-demo:v2"
    assert out["analysis"] == analysed, "no new analysis ran"
    assert any("instant rollback" in line for line in d.log)
    assert containers() == {"odoo": "canary-demo:v1"}
    assert load.failures == 0, load.statuses


def test_adopts_the_guides_hand_started_container_and_site(deployment):
    d = deployment
    sh("docker run -d --name odoo --restart unless-stopped -p 127.0.0.1:8069:8069 canary-demo:v1")
    sh("cat > /etc/nginx/sites-enabled/odoo <<'EOF'\n"
       "server { listen 8088; location / { proxy_pass http://localhost:8069; } }\nEOF\n"
       "nginx -s reload")
    hand_started = container_id("odoo")
    d.set(nginx_site="/etc/nginx/sites-enabled/odoo")
    with pytest.raises(auto.CommandError) as refused:
        d.up()  # a name match is not enough: adopting is an explicit choice
    assert "adopt" in str(refused.value) and container_id("odoo") == hand_started
    d.set(adopt="true")
    d.up()
    assert container_id("odoo") == hand_started, "adopted, not replaced"
    assert d.outputs()["production_image"] == "canary-demo:v1"
    assert "Managed by the canary Pulumi program" in open("/etc/nginx/sites-enabled/odoo").read()
    d.preview(expect_no_changes=True)
    d.set(image_tag="v2")
    d.up()
    assert containers() == {"odoo": "canary-demo:v2"}
    assert d.outputs()["previous_image"] == "canary-demo:v1", "the adopted image is the way back"


def test_an_adopted_sites_tls_and_settings_are_kept(deployment, tmp_path):
    """The guide's droplet serves its ERP over TLS (certbot's lines): adopting its site keeps
    them, with its compression; its body size is the config's now, and the run says so."""
    d = deployment
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    sh(f"openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=erp.example.com -keyout {key} -out {cert} "
       "2>/dev/null")
    sh("docker run -d --name odoo --restart unless-stopped -p 127.0.0.1:8069:8069 canary-demo:v1")
    sh("cat > /etc/nginx/sites-enabled/odoo <<'EOF'\n"
       "server {\n    listen 8088;\n    listen 8443 ssl; # managed by Certbot\n"
       f"    ssl_certificate {cert};\n    ssl_certificate_key {key};\n"
       "    gzip on;\n    client_max_body_size 50m;\n"
       "    location / { proxy_pass http://localhost:8069; }\n}\nEOF\n"
       "nginx -s reload")
    assert "canary-demo v1" in sh("curl -sk https://127.0.0.1:8443/")
    d.set(nginx_site="/etc/nginx/sites-enabled/odoo", adopt="true")
    d.up()
    site = open("/etc/nginx/sites-enabled/odoo").read()
    assert "Managed by the canary Pulumi program" in site and "client_max_body_size 200m;" in site
    assert "kept 4 settings of the adopted site" in "\n".join(d.log)
    assert "client_max_body_size 50m" in "\n".join(d.log)  # said: the config sets it now
    # TLS still answers, through this program's site (its header says which backend).
    answer = sh("curl -sk -D - https://127.0.0.1:8443/")
    assert "X-Canary-Backend: localhost:8069" in answer and "canary-demo v1" in answer
    d.destroy()  # the adopted site comes back as it was
    assert "client_max_body_size 50m;" in open("/etc/nginx/sites-enabled/odoo").read()
    assert not sh("ls /var/lib/canary/odoo/site.kept.conf 2>/dev/null || true").strip()


def test_hold_then_more_traffic_then_manual_promotion(deployment):
    d = deployment
    d.up()
    d.set(image_tag="v2", auto_promote="false", canary_percentage="10")
    with Load():
        d.up()
    out = d.outputs()
    assert out["phase"] == "holding" and out["canary_weight"] == 10
    assert containers() == {"odoo": "canary-demo:v1", "odoo-canary": "canary-demo:v2"}
    assert "10 % canary" in open("/etc/nginx/conf.d/odoo-canary.conf").read()
    d.preview(expect_no_changes=True)
    canary = container_id("odoo-canary")

    d.set(canary_percentage="25")
    with Load():
        d.up()
    out = d.outputs()
    assert out["phase"] == "holding" and out["canary_weight"] == 25
    assert out["analysis"]["weight"] == 25, "re-analysed at the new weight"
    assert container_id("odoo-canary") == canary, "routing only: the canary was not restarted"

    # The one-off promotion (like Argo's `promote`): auto_promote stays false.
    d.set(promote="v2")
    assert "promote" in d.preview(diff=True).stdout
    with Load() as load:
        d.up()
    out = d.outputs()
    assert out["phase"] == "promoted" and out["production_image"] == "canary-demo:v2", out["message"]
    assert "by hand" in out["message"]
    assert out["analysis"]["weight"] == 25, "promoted without a second analysis"
    assert d.stack.get_config("canary:auto_promote").value == "false"
    assert containers() == {"odoo": "canary-demo:v2"}
    assert load.failures == 0, load.statuses


def test_held_canary_promoted_by_turning_auto_promote_on(deployment):
    """The design's contract: `auto_promote true && pulumi up` promotes a held canary
    without a second full analysis (the one-off `promote` is the other way)."""
    d = deployment
    d.up()
    d.set(image_tag="v2", auto_promote="false")
    d.up()
    held = d.outputs()
    assert held["phase"] == "holding"
    d.set(auto_promote="true")
    with Load() as load:
        d.up()
    out = d.outputs()
    assert out["phase"] == "promoted" and out["production_image"] == "canary-demo:v2", out["message"]
    assert out["analysis"] == held["analysis"], "promoted without a second analysis"
    assert containers() == {"odoo": "canary-demo:v2"}
    assert load.failures == 0, load.statuses


def test_hold_then_manual_rollback_with_percentage_zero(deployment):
    d = deployment
    d.up()
    d.set(image_tag="v2", auto_promote="false")
    d.up()
    assert d.outputs()["phase"] == "holding"
    d.set(canary_percentage="0")
    with Load() as load:
        d.up()
    out = d.outputs()
    assert out["phase"] == "aborted" and out["failed_image"] == ""
    assert containers() == {"odoo": "canary-demo:v1"}
    assert not split_exists()
    assert load.failures == 0, load.statuses
    d.preview(expect_no_changes=True)
    # Not blocked: asking for a canary again starts one.
    d.set(canary_percentage="10")
    d.up()
    assert d.outputs()["phase"] == "holding"
