"""FIELDS (one entry per config key) against what depends on it: the README table,
Pulumi.yaml, Settings, the program's secret and structured keys, the fault sweep's bad
values, and the config layer's imports."""

import dataclasses
import subprocess
import sys

import pytest
import yaml

from canary import config_docs
from canary.config import DEFAULTS, ConfigError, Settings, load
from canary.config_fields import FIELD, FIELDS, SECRET_KEYS, STRUCTURED, bad_input_batches, decoded, names_key
from tests.e2e.harness import BASE_CONFIG, ROOT, TESTHOST_DIR

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIItacbEdtqXT2Ea9U7i3NjqphXIndLeHps5lhqc6CTA1"
# The test host's key files, as the fault suite's stack names them.
FILES = {str(TESTHOST_DIR / "id_ed25519"): KEY, str(TESTHOST_DIR / "ssh_host_ed25519_key.pub"): HOST_KEY + "\n"}

# Keys that cannot have a bad example of their own, and why. Empty: every key has one.
NO_BAD_EXAMPLE: dict[str, str] = {}


def _read_file(path: str) -> str:
    if path not in FILES:
        raise FileNotFoundError(2, "No such file or directory")
    return FILES[path]


def _load_as_the_program_does(values: dict, secret_keys=frozenset()):
    """Strings, as `pulumi config set` stores them; structured keys decoded as program.py does."""
    return load(lambda k: decoded(k, values.get(k)), "test", secret_keys, read_file=_read_file)


def test_readme_table_is_generated_from_fields():
    readme = config_docs.README.read_text()
    assert readme == config_docs.readme_with_table(readme), \
        f"README's configuration table differs from canary/config_fields.py: run `{config_docs.REGENERATE}`"


def test_pulumi_yaml_config_is_generated_from_fields():
    text = config_docs.PULUMI_YAML.read_text()
    assert text == config_docs.pulumi_yaml_with_config(text), \
        f"Pulumi.yaml's config: block differs from canary/config_fields.py: run `{config_docs.REGENERATE}`"


def test_generated_docs_name_every_key_once():
    table = config_docs.readme_table()
    assert [line.split("`")[1] for line in table.splitlines()[2:]] == [f.name for f in FIELDS]
    declared = yaml.safe_load(config_docs.pulumi_yaml_config())["config"]
    assert set(declared) == {f.name for f in FIELDS if f.required or f.default is not None}
    assert all(f.doc and "\n" not in f.doc + f.more for f in FIELDS)


def test_a_changed_field_makes_the_readme_check_fail(monkeypatch):
    readme = config_docs.README.read_text()
    monkeypatch.setattr(config_docs, "FIELDS", FIELDS[:-1])
    assert config_docs.readme_with_table(readme) != readme


def test_the_fault_test_base_config_is_valid():
    s = _load_as_the_program_does(BASE_CONFIG)
    assert (s.host, s.ssh_port, s.private_key, s.host_key) == ("127.0.0.1", 2222, KEY, HOST_KEY)


def test_every_key_has_bad_examples():
    missing = {f.name for f in FIELDS if not f.bad}
    assert missing == set(NO_BAD_EXAMPLE), f"keys without a bad example for the fault sweep: {missing}"


@pytest.mark.parametrize("value", list(bad_input_batches()), ids=lambda v: repr(v[:20]))
def test_each_bad_example_is_refused_naming_its_key(value):
    """As the fault sweep sets them: all keys that refuse a value at once, on its base."""
    keys = bad_input_batches()[value]
    with pytest.raises(ConfigError) as err:
        _load_as_the_program_does({**BASE_CONFIG, **keys})
    text = str(err.value)
    assert [k for k in keys if not names_key(text, k)] == []


def test_names_key_takes_only_the_problems_own_key():
    assert not names_key(str(ConfigError(["canary:image_tag is required"])), "image")
    assert names_key(str(ConfigError(["canary:image_tag is required", "canary:image = 'X' is not allowed"])),
                     "image")
    assert names_key(str(ConfigError(["canary:env.'A-B' is not a valid variable name"])), "env")
    assert not names_key(str(ConfigError(["canary:nginx_sites_dir = '/x'"])), "nginx_site")
    mentioned = "canary:ssh_private_key is not allowed: a key, or canary:ssh_private_key_file, a path to it"
    assert not names_key(str(ConfigError([mentioned])), "ssh_private_key_file")
    # As the CLI shows it.
    assert names_key("    error: invalid stack configuration:\n      - canary:host is required: x", "host")


def test_settings_has_an_attribute_for_each_kept_key():
    kept = {f.attr for f in FIELDS if f.attr}
    derived = {"stack", "env_is_secret", "metric_command_is_secret"}
    assert {f.name for f in dataclasses.fields(Settings)} == kept | derived


def test_defaults_come_from_fields():
    assert DEFAULTS["canary_percentage"] == 10 and DEFAULTS["monitoring_duration"] == "15"
    assert "image" not in DEFAULTS and all(FIELD[k].default == v for k, v in DEFAULTS.items())


def test_structured_keys_are_decoded_from_json():
    assert set(STRUCTURED) == {"env", "canary_env", "volumes", "canary_volumes", "canary_steps", "hosts",
                               "websocket_paths", "prometheus_metrics", "host_mount_prefixes"}
    assert decoded("canary_steps", "[10, 25]") == [10, 25]
    assert decoded("canary_steps", "not json") == "not json"  # reported by the key's own check
    assert decoded("image_tag", "[1]") == "[1]"


# A well-formed value of each key that must be a secret (with what it needs), refused
# when set in plain text.
WELL_FORMED_SECRETS = {"force_token": ("a" * 24, {}),
                       "registry_password": ("pa55word-123", {"registry_username": "ci",
                                                              "registry_server": "docker.io"}),
                       "database_url": ("postgresql://erp:s3cret-pw@172.17.0.1:5432/erp", {})}


def test_keys_that_must_be_secret_are_refused_in_plain_text():
    assert {f.name for f in FIELDS if f.secret == "must"} == set(WELL_FORMED_SECRETS)
    for key, (value, needs) in WELL_FORMED_SECRETS.items():
        values = {**BASE_CONFIG, **needs, key: value}
        with pytest.raises(ConfigError) as err:
            _load_as_the_program_does(values)
        assert f"canary:{key} must be a secret" in str(err.value) and value not in str(err.value)
        _load_as_the_program_does(values, secret_keys=frozenset({key}))


def test_the_program_asks_which_keys_are_secret():
    assert set(SECRET_KEYS) >= {"env", "canary_env", "force_token", "metric_command", "registry_password"}
    assert all(FIELD[k].secret in ("may", "should", "must") for k in SECRET_KEYS)


def test_the_config_layer_does_not_import_the_remote_layer():
    code = ("import sys, canary.config, canary.config_docs; "
            "print(sorted(m for m in sys.modules if m.startswith('canary.remote') or m == 'paramiko'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_database_keys_make_the_migration_and_the_connections_check():
    from canary.spec import ReleaseSpec
    url = "postgresql://erp:s3cret-pw@172.17.0.1:5432/erp"
    values = {**BASE_CONFIG, "database_url": url, "migrate_command": "trytond-admin -d erp -u 'party country'",
              "backup_image": "127.0.0.1:5000/canary-erp-db:15"}
    s = _load_as_the_program_does(values, secret_keys=frozenset({"database_url"}))
    assert s.migrate_command == ("trytond-admin", "-d", "erp", "-u", "party country")
    spec = ReleaseSpec.from_settings(s)
    assert spec.migration.backup and spec.migration.backup_keep == 5 and spec.migration.timeout == 1800
    assert spec.analysis.db_connections_max == 80
    assert ReleaseSpec.from_inputs(spec.to_inputs()) == spec  # through the engine and back
    assert url not in repr(s) and url not in str(spec.to_inputs())  # the URL is no input
    # A migration backs up first: without a database, say so (or backup false).
    with pytest.raises(ConfigError) as err:
        _load_as_the_program_does({**BASE_CONFIG, "migrate_command": "odoo -u all --stop-after-init"})
    assert "canary:migrate_command backs the database up first" in str(err.value)
    s = _load_as_the_program_does({**BASE_CONFIG, "migrate_command": "odoo -u all", "backup": "false"})
    assert ReleaseSpec.from_settings(s).analysis.db_connections_max is None
    # A malformed URL is refused without showing it.
    with pytest.raises(ConfigError) as err:
        _load_as_the_program_does({**BASE_CONFIG, "database_url": "mysql://erp:pw@db/erp"},
                                  secret_keys=frozenset({"database_url"}))
    assert "canary:database_url (secret, not shown) is not allowed" in str(err.value) and "pw@" not in str(err.value)


def test_a_canary_database_of_its_own_is_named_for_the_preview_warning():
    s = _load_as_the_program_does({**BASE_CONFIG, "canary_env": '{"PGDATABASE": "odoo_canary", "THEME": "x"}'})
    assert s.canary_database_keys == ("PGDATABASE",)
    assert _load_as_the_program_does(BASE_CONFIG).canary_database_keys == ()


def test_a_fleet_migrates_on_one_canary_droplet():
    fleet = '[{"host": "10.0.0.5"}, {"host": "10.0.0.6"}, {"host": "10.0.0.7"}]'
    values = {**{k: v for k, v in BASE_CONFIG.items() if k != "host"}, "hosts": fleet,
              "migrate_command": "odoo -u all", "backup": "false"}
    assert _load_as_the_program_does(values).canary_hosts == 1
    with pytest.raises(ConfigError) as err:
        _load_as_the_program_does({**values, "canary_hosts": "2"})
    assert "canary:migrate_command with canary:canary_hosts = 2 is not allowed" in str(err.value)
