import os

from .harness import containers, split_exists, served_versions


def test_first_deploy_on_empty_host(deployment):
    deployment.up()
    out = deployment.outputs()
    assert out["phase"] == "promoted"
    assert out["production_image"] == "canary-demo:v1"
    assert containers() == {"odoo": "canary-demo:v1"}
    assert not split_exists()
    assert served_versions(20) == {"canary-demo v1": 20}


def test_destroy_removes_everything_it_created(deployment):
    deployment.up()
    assert os.path.exists("/etc/nginx/sites-enabled/odoo.conf")
    deployment.destroy()
    assert containers() == {}
    assert not os.path.exists("/etc/nginx/sites-enabled/odoo.conf")
    assert not split_exists()
