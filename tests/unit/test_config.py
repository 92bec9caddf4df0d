import pytest
import yaml

from canary.config import ConfigError, load, parse_duration
from tests.e2e.harness import ROOT

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIItacbEdtqXT2Ea9U7i3NjqphXIndLeHps5lhqc6CTA1"
BASE = {"image": "odoo-erp", "image_tag": "prod-abc1234", "host": "165.227.10.178",
        "ssh_private_key": KEY, "ssh_host_key": HOST_KEY}


def settings(**over):
    values = {**BASE, **over}
    return load(lambda k: values.get(k), "test")


def problems(**over):
    with pytest.raises(ConfigError) as err:
        settings(**over)
    return str(err.value)


def test_the_guides_defaults_and_units():
    s = settings()
    assert (s.canary_percentage, s.monitoring_duration, s.error_threshold, s.auto_promote,
            s.check_interval) == (10, 900.0, 5.0, True, 30.0)
    assert (s.stable_port, s.canary_port, s.health_path, s.container_name) == (8069, 8070, "/web/health", "odoo")
    assert s.split_path == "/etc/nginx/conf.d/odoo-canary.conf"
    assert s.full_image == "odoo-erp:prod-abc1234"
    assert s.steps == (10,)


@pytest.mark.parametrize("raw,seconds", [("15", 900), (15, 900), ("90s", 90), ("2m", 120),
                                         ("1h", 3600), ("0.5", 30), ("500ms", 0.5)])
def test_durations(raw, seconds):
    assert parse_duration(raw, "m") == seconds


def test_error_threshold_is_percent():
    assert settings(error_threshold="0.5").error_threshold == 0.5
    assert settings(error_threshold="5").error_threshold == 5


@pytest.mark.parametrize("key,value", [
    ("canary_percentage", "-1"), ("canary_percentage", "101"), ("canary_percentage", "abc"),
    ("canary_percentage", "10.5"), ("image_tag", "v1;rm -rf /"), ("image_tag", "$(id)"),
    ("image_tag", "`id`"), ("image_tag", "a|b"), ("image_tag", "a\nb"), ("image_tag", "x" * 129),
    ("image", "Odoo"), ("monitoring_duration", "0"), ("monitoring_duration", "fast"),
    ("check_interval", "-3"), ("error_threshold", "101"), ("auto_promote", "yes please"),
    ("host", "a b"), ("host", "$(id)"), ("ssh_port", "0"), ("ssh_user", "root;id"),
    ("ssh_host_key", "AAAA"), ("health_path", "web/health"), ("health_path", "/a b"),
    ("container_name", "odoo&&id"), ("restart_policy", "sometimes"), ("server_name", "a;b"),
    ("nginx_sites_dir", "../etc"), ("routing", "random"), ("volumes", ["/a:/b:rx"]),
    ("canary_steps", [50, 10]), ("canary_steps", [0, 10]), ("env", {"BAD-NAME": "x"}),
    ("env", {"A": "line1\nline2"}), ("canary_port", "8069"), ("image_tag", ""),
])
def test_bad_values_name_the_key(key, value):
    assert f"canary:{key}" in problems(**{key: value})


def test_all_problems_are_reported_at_once():
    text = problems(canary_percentage="101", image_tag="v1;x", host="a b")
    assert text.count("canary:") == 3


def test_secrets_are_never_echoed_in_errors():
    text = problems(ssh_private_key="secret-not-a-key-123")
    assert "secret-not-a-key-123" not in text


def test_required_keys():
    values = {"image": "odoo-erp"}
    with pytest.raises(ConfigError) as err:
        load(lambda k: values.get(k), "test")
    for key in ("image_tag", "host", "ssh_host_key", "ssh_private_key"):
        assert f"canary:{key}" in str(err.value)


def test_key_files_are_read_with_the_given_reader():
    values = {**BASE, "ssh_private_key": None, "ssh_private_key_file": "~/.ssh/k",
              "ssh_host_key": None, "ssh_host_key_file": "/keys/host.pub"}
    files = {"~/.ssh/k": KEY, "/keys/host.pub": HOST_KEY + " root@droplet\n"}
    s = load(lambda k: values.get(k), "test", read_file=files.__getitem__)
    assert s.host_key == HOST_KEY and s.private_key == KEY


def test_production_stack_file_is_valid():
    """Pulumi.production.yaml, through the program's own config code, without the host."""
    doc = yaml.safe_load((ROOT / "Pulumi.production.yaml").read_text())["config"]
    values = {k.split(":", 1)[1]: v for k, v in doc.items()}
    # (the database's URL is the operator's secret, set as the file's comments say)
    values["database_url"] = "postgresql://odoo:pw@db.internal:5432/odoo"
    s = load(values.get, "production", frozenset({"database_url"}), read_file=lambda path: KEY)
    assert s.host == "165.227.10.178" and s.container_name == "odoo"
    assert s.site_path == "/etc/nginx/sites-enabled/odoo"
    assert s.split_path == "/etc/nginx/conf.d/odoo-canary.conf"
    assert (s.canary_percentage, s.monitoring_duration, s.error_threshold, s.auto_promote) == (10, 900, 5, True)
    # One database for canary and stable; the release migrates it after a backup.
    assert s.canary_env == {} and s.canary_database_keys == ()
    assert s.migrate_command == ("odoo", "-u", "all", "--stop-after-init", "--no-http") and s.backup
    assert s.max_db_connections == 80


def test_local_stack_file_is_valid():
    doc = yaml.safe_load((ROOT / "Pulumi.local.yaml").read_text())["config"]
    values = {k.split(":", 1)[1]: v for k, v in doc.items()}
    s = load(values.get, "local", read_file=lambda path: KEY if "id_" in path else HOST_KEY)
    assert s.host == "127.0.0.1" and s.ssh_port == 2222


# -- config is not root: nginx paths and host mounts ----------------------------------------
@pytest.mark.parametrize("key,value", [
    ("nginx_site", "/etc/nginx/nginx.conf"), ("nginx_site", "/etc/nginx/mime.types"),
    ("nginx_site", "/etc/nginx/sites-enabled"), ("nginx_site", "/etc/nginx/conf.d"),
    ("nginx_site", "/etc/nginx/sites-enabled/"), ("nginx_site", "/etc/nginx/sites-enabled/../nginx.conf"),
    ("nginx_site", "/etc/nginx/sites-enabled/../../passwd"), ("nginx_site", "/etc/passwd"),
    ("nginx_site", "/etc/nginx"), ("nginx_site", "/etc/nginx/"), ("nginx_site", "//etc/nginx/sites-enabled/x"),
    ("nginx_site", "/etc/nginx//x.conf"), ("nginx_site", "/etc/nginx/./x.conf"),
    ("nginx_site", "/etc/nginx/conf.d/odoo-canary.conf"), ("nginx_site", "/etc/nginx/snippets/fastcgi_params"),
    ("nginx_site", "/root/.ssh/authorized_keys"), ("nginx_site", "etc/nginx/sites-enabled/x"),
    ("nginx_sites_dir", "/etc"), ("nginx_sites_dir", "/etc/nginx"), ("nginx_sites_dir", "/etc/nginx/../cron.d"),
    ("nginx_sites_dir", "/etc/cron.d"), ("nginx_sites_dir", "/etc/nginx/sites-enabled/"),
    ("nginx_conf_dir", "/etc/systemd/system"), ("nginx_conf_dir", "/etc/nginx/conf.d/.."),
    ("nginx_log_dir", "/etc/nginx/conf.d"), ("nginx_log_dir", "/var/log"), ("nginx_log_dir", "/var/log/../lib"),
    ("nginx_log_dir", "/root"), ("nginx_log_dir", "/var/logs/nginx"),
])
def test_nginx_paths_stay_in_nginx_directories(key, value):
    text = problems(**{key: value})
    assert f"canary:{key}" in text and ("/etc/nginx/" in text or "/var/log/" in text)


def test_nginx_site_naming_a_configured_directory_is_refused():
    assert "canary:nginx_site" in problems(nginx_sites_dir="/etc/nginx/vhosts", nginx_site="/etc/nginx/vhosts")


@pytest.mark.parametrize("key,value", [
    ("nginx_site", "/etc/nginx/sites-enabled/odoo"), ("nginx_site", "/etc/nginx/conf.d/odoo.conf"),
    ("nginx_site", "/etc/nginx/odoo.conf"), ("nginx_sites_dir", "/etc/nginx/vhosts"),
    ("nginx_conf_dir", "/etc/nginx/http.d"), ("nginx_log_dir", "/var/log/nginx/odoo"),
])
def test_nginx_paths_inside_nginx_are_allowed(key, value):
    assert getattr(settings(**{key: value}), key) == value


@pytest.mark.parametrize("volume", [
    "/:/host", "/etc:/x", "/etc/ssl:/x:ro", "/root:/x", "/root/.ssh:/x", "/proc:/x", "/sys/fs:/x",
    "/dev:/x", "/boot:/x", "/var/run/docker.sock:/var/run/docker.sock", "/run/docker.sock:/s",
    "/run:/x", "/var/run:/x", "/var:/x", "/srv/../etc:/x", "//etc:/x", "/srv/..:/x", "/var/./run:/x",
    "/var/lib/docker:/x", "/./etc/shadow:/x:ro",
    # What the old deny-list let through (issue 34).
    "/home:/x", "/home/odoo/.ssh:/x", "/usr:/x", "/usr/bin:/x", "/bin:/x", "/run/containerd/containerd.sock:/s",
    "/run/dbus/system_bus_socket:/s", "/run/podman/podman.sock:/s", "/var/spool/cron:/x",
    "/var/lib/canary:/x", "/var/lib/canary/odoo:/x", "/srv/../var/lib/canary:/x",
    # Outside the default prefixes (/srv, /opt/odoo), however harmless they look.
    "/opt/other-app:/x", "/srvx:/x", "/opt/odoo-other:/x", "/var/lib/odoo:/var/lib/odoo", "/etcetera:/x",
])
def test_host_mounts_outside_the_prefixes_are_refused(volume):
    text = problems(volumes=[volume])
    assert "canary:volumes" in text and "canary:allow_host_mounts" in text
    assert "canary:host_mount_prefixes (/srv, /opt/odoo)" in text and "named volume" in text
    assert "canary:canary_volumes" in problems(canary_volumes=[volume])


@pytest.mark.parametrize("volume", ["odoo-data:/var/lib/odoo", "/srv/odoo/addons:/mnt/addons:ro", "/srv:/srv",
                                    "/opt/odoo:/x", "/opt/odoo/filestore:/x"])
def test_named_volumes_and_the_default_prefixes_are_allowed(volume):
    assert settings(volumes=[volume]).volumes == (volume,)
    assert settings(canary_volumes=[volume]).canary_volumes == (volume,)


@pytest.mark.parametrize("prefix,volume", [("/var/lib/odoo", "/var/lib/odoo:/var/lib/odoo"),
                                           ("/run/postgresql", "/run/postgresql:/run/postgresql"),
                                           ("/home/odoo", "/home/odoo/addons:/x"), ("/etcetera", "/etcetera:/x")])
def test_configured_prefixes_allow_the_apps_own_directories(prefix, volume):
    s = settings(volumes=[volume], host_mount_prefixes=[prefix])
    assert s.volumes == (volume,)
    # The configured list replaces the default one.
    assert "canary:volumes" in problems(volumes=["/srv/x:/x"], host_mount_prefixes=[prefix])


@pytest.mark.parametrize("prefixes", [["/"], ["/var"], ["/usr"], ["/var/lib"], ["/opt"], ["/etc/odoo"],
                                      ["/var/lib/docker/volumes"], ["/var/lib/canary"], ["/run/dbus"],
                                      ["/run/containerd"], ["srv"], ["/srv/../etc"], ["/srv/"], "/srv", [1]])
def test_prefixes_that_would_open_the_host_are_refused(prefixes):
    assert "canary:host_mount_prefixes" in problems(host_mount_prefixes=prefixes)


def test_allow_host_mounts_lets_the_operator_mount_anything():
    vols = ["/var/run/docker.sock:/var/run/docker.sock", "/:/host:ro"]
    assert settings(volumes=vols, allow_host_mounts="true").volumes == tuple(vols)
    assert "canary:allow_host_mounts" in problems(allow_host_mounts="maybe")


# -- the image's registry ------------------------------------------------------------------------
def test_registry_defaults_to_the_one_named_in_the_image():
    assert settings(image="registry.digitalocean.com/team/odoo-erp").registry_server == "registry.digitalocean.com"
    assert settings(image="127.0.0.1:5000/canary-demo").registry_server == "127.0.0.1:5000"
    assert settings(image="localhost/app").registry_server == "localhost"
    assert settings(image="odoo-erp").registry_server == "docker.io"
    s = settings(image="127.0.0.1:5000/canary-demo", registry_insecure="true")
    assert s.registry_address == "http://127.0.0.1:5000" and s.image_pull is True


LOGIN = {"registry_server": "registry.example.com", "image": "registry.example.com/team/odoo",
         "registry_username": "ci"}


def test_registry_password_must_be_a_secret_and_is_never_echoed():
    values = {**BASE, **LOGIN, "registry_password": "pa55word-123"}
    with pytest.raises(ConfigError) as err:
        load(values.get, "test")
    assert "canary:registry_password must be a secret" in str(err.value)
    assert "pa55word-123" not in str(err.value)
    s = load(values.get, "test", secret_keys=frozenset({"registry_password"}))
    assert (s.registry_username, s.registry_password) == ("ci", "pa55word-123")
    assert "pa55word-123" not in repr(s)


def test_registry_password_from_a_file_and_credentials_go_together():
    values = {**BASE, **LOGIN, "registry_password_file": "/run/secrets/registry"}
    s = load(values.get, "test", read_file=lambda path: "from-file\n")
    assert s.registry_password == "from-file"
    assert "go together" in problems(registry_username="ci")
    text = problems(registry_username="bad user")
    assert "canary:registry_username" in text


def test_the_registry_login_goes_to_the_configured_server_only():
    login = {**LOGIN, "registry_password_file": "/run/secrets/registry"}

    def loaded(**over):
        values = {**BASE, **login, **over}
        return load(lambda k: values.get(k), "test", read_file=lambda path: "pw-from-file\n")

    assert loaded().registry_address == "registry.example.com"
    # A pull request that changes the image's host alone: refused, naming the keys.
    with pytest.raises(ConfigError) as err:
        loaded(image="evil.example.net/team/odoo")
    text = str(err.value)
    assert "- canary:image 'evil.example.net/team/odoo' is on the registry 'evil.example.net'" in text
    assert "canary:registry_server 'registry.example.com'" in text and "canary:registry_username" in text
    with pytest.raises(ConfigError):
        loaded(image="odoo")  # Docker Hub
    # With a login, the server is never taken from the image.
    with pytest.raises(ConfigError) as err:
        loaded(registry_server=None)
    assert "canary:registry_server is required with a registry login" in str(err.value)
    # Docker Hub under its other names; no login: the image's registry, anonymously.
    assert loaded(image="odoo", registry_server="index.docker.io").registry_server == "index.docker.io"
    assert settings(image="evil.example.net/team/odoo").registry_username is None


def test_secret_capable_values_are_never_echoed_in_errors():
    metric = "psql postgresql://odoo:hunter2-pw@db/odoo -Atc 'select 1'\nsecond line " + "x" * 2000
    values = {**BASE, "metric_command": metric, "metric_max": "5", "registry_username": "dop_v1 token x"}
    for secret_keys in (frozenset(), frozenset({"metric_command", "registry_username"})):
        with pytest.raises(ConfigError) as err:
            load(values.get, "test", secret_keys=secret_keys)
        text = str(err.value)
        assert "- canary:metric_command (not shown: it may be a secret) is not allowed" in text
        assert "- canary:registry_username (not shown: it may be a secret) is not allowed" in text
        assert "psql" not in text and "hunter2" not in text and "dop_v1" not in text
    # A key that can hold no secret still shows what was wrong with it.
    assert "'abc'" in problems(canary_percentage="abc")


@pytest.mark.parametrize("key,value", [("image_pull", "maybe"), ("registry_insecure", "yes please"),
                                       ("registry_server", "https://registry.example.com"),
                                       ("registry_server", "reg;rm -rf /"),
                                       ("canary_volumes", ["/etc:/x"]), ("canary_volumes", "odoo-data")])
def test_bad_registry_and_canary_volume_values_name_their_key(key, value):
    assert f"canary:{key}" in problems(**{key: value})


def test_named_volumes_of_both_containers():
    s = settings(volumes=["odoo-data:/var/lib/odoo", "/srv/x:/x"], canary_volumes=["odoo-canary:/var/lib/odoo"])
    assert s.named_volumes == ("odoo-data", "odoo-canary")


def test_promote_names_the_tag_of_the_held_canary():
    from canary.spec import ReleaseSpec
    assert ReleaseSpec.from_settings(settings(promote="prod-abc1234")).promote is True
    # A promote left over from an earlier release does nothing for the next tag.
    assert ReleaseSpec.from_settings(settings(promote="prod-0000000")).promote is False
    assert ReleaseSpec.from_settings(settings()).promote is False
    assert "canary:promote" in problems(promote="v2;reboot")


def test_pulumi_yaml_declares_the_keys_with_the_programs_defaults():
    from canary.config import DEFAULTS
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert set(declared) == set(DEFAULTS) | {"image", "image_tag"}  # (host, or hosts: the program asks)
    assert all(v["type"] == "string" and v.get("description") for v in declared.values())
    defaults = {k: v["default"] for k, v in declared.items() if "default" in v}
    assert set(defaults) == set(DEFAULTS)  # the required keys have none: Pulumi asks for them
    # What Pulumi hands the program from Pulumi.yaml means what the program's defaults mean.
    assert load(lambda k: BASE.get(k, defaults.get(k)), "test") == load(BASE.get, "test")


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:9/hooks/x",
                                 "http://localhost/hooks/x", "http://[::1]:8080/x", "https://[fd00:ec2::254]/x",
                                 "http://0.0.0.0/x"])
def test_a_webhook_on_a_local_address_is_refused_at_preview(url):
    text = problems(notify_webhook=url)
    assert "- canary:notify_webhook (secret, not shown) is not allowed: its host is" in text
    assert "canary:notify_allow_local" in text and url not in text and "/x" not in text
    settings(notify_webhook=url, notify_allow_local="true")


def test_a_webhook_on_another_address_is_accepted():
    settings(notify_webhook="https://hooks.slack.com/services/T0/B0/x")
    settings(notify_webhook="http://10.0.0.5:8065/hooks/x")  # a self-hosted receiver on the private network
