"""The image and the data volumes on the host, as pulumi-docker resources.

- `docker.Provider` talks to the host's Docker engine over `ssh://` with the deploy key
  and the pinned host key (a known_hosts file with that one key and
  StrictHostKeyChecking=yes: never trust on first use).
- The image's digest is looked up in its registry (`get_registry_image`) while the
  program runs, so `pulumi preview` knows it: the release is keyed by that digest.
- `docker.RemoteImage` pulls `image:image_tag` onto the host before the site or the
  release change anything; `pull_triggers` holds the digest, so a tag that moved is
  pulled again. It keeps the image on delete: the previous production may still run it.
- Named volumes are `docker.Volume`s that `pulumi destroy` leaves in place
  (`retain_on_delete`): data outlives the stack.

A fleet (canary:hosts) has these per droplet, named after it (`docker-web-1`,
`image-web-1`...); the one droplet of canary:host keeps the plain names.

The ssh client reads the key and the known_hosts line from files, which the program
writes into `.canary/ssh/<target>/` (mode 700, git-ignored) of the program's directory:
the known_hosts line, and the deploy key (mode 600) when it is a secret, or a link to
`ssh_private_key_file`. The provider's configuration names them by paths relative to
that directory (the docker provider runs there too), so a laptop and a CI runner give it
the same configuration: no diff between machines. Never a key on a command line.

Why the key stays after the run (measured, issue 34): the engine starts the docker
provider from the configuration recorded in the state, without this program, for
`pulumi refresh`, the refresh of `pulumi up --refresh` and `pulumi destroy`, and within
`pulumi up` for the deletes that follow the program's end (the image of a droplet taken
out of canary:hosts); the provider pings the Docker engine over ssh with these files first.
With them removed each of those failed ("Identity file ... not accessible"); `pulumi
preview` and `--run-program` write them again. Removing `.canary/ssh` after a run is
safe when the next command runs the program first (`pulumi up`, `pulumi preview`,
`pulumi refresh --run-program`, `pulumi destroy --run-program`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pulumi
import pulumi_docker as docker

from .config import Settings
from .target import Target


SSH_DIR = Path(".canary") / "ssh"


def named(base: str, t: Target) -> str:
    """A droplet's resource name: `base-NAME` in a fleet, `base` for the one droplet."""
    return f"{base}-{t.name}" if t.name else base


def _private_dir(s: Settings, t: Target) -> Path:
    """The target's directory, relative to the program's (and the providers') directory."""
    target = hashlib.sha256(f"{s.stack}|{t.user}@{t.host}:{t.port}".encode()).hexdigest()[:16]
    d = SSH_DIR / target
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    for p in (SSH_DIR.parent, SSH_DIR, d):  # private, even if it existed before
        if p.is_symlink() or p.lstat().st_uid != os.getuid():
            raise pulumi.RunError(f"{os.path.abspath(p)} must be a directory of this user's")
        os.chmod(p, 0o700)
    return d


def _write_private(path: Path, text: str) -> None:
    """Writes `text` to `path` with mode 600 from the first byte (a rename makes it whole)."""
    tmp = path.with_name(path.name + f".{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def ssh_files(s: Settings, t: Target) -> tuple[str, str]:
    """(private key path, known_hosts path) for the system ssh client."""
    d = _private_dir(s, t)
    known = d / "known_hosts"
    pattern = t.host if t.port == 22 else f"[{t.host}]:{t.port}"
    _write_private(known, f"{pattern} {t.host_key}\n")
    key = d / "id"
    if s.private_key_file:  # a link: the key stays where the user keeps it
        link = key.with_name(f"id.{os.getpid()}")
        link.unlink(missing_ok=True)  # left by a run killed here
        os.symlink(os.path.abspath(s.private_key_file), link)
        os.replace(link, key)
    else:
        _write_private(key, s.private_key)
    return str(key), str(known)


def provider(s: Settings, t: Target) -> docker.Provider:
    key, known_hosts = ssh_files(s, t)
    auth = None
    if s.registry_username:
        auth = [docker.ProviderRegistryAuthArgs(
            address=s.registry_address, username=pulumi.Output.secret(s.registry_username),
            password=pulumi.Output.secret(s.registry_password))]
    return docker.Provider(
        named("docker", t), host=f"ssh://{t.user}@{t.host}:{t.port}",
        ssh_opts=["-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes",
                  "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                  "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15"],
        registry_auth=auth)


def registry_digest(s: Settings, p: docker.Provider) -> str:
    """The registry's digest of image:image_tag ("" for an image already on the host)."""
    if not s.image_pull:
        return ""
    try:
        return docker.get_registry_image(name=s.full_image, opts=pulumi.InvokeOptions(provider=p)).sha256_digest
    except Exception as err:  # the provider's message, without a traceback
        raise pulumi.RunError(
            f"cannot read {s.full_image} from the registry {s.registry_server}: {str(err).strip()[-400:]}. "
            "Check canary:image and canary:image_tag, and canary:registry_username with "
            "canary:registry_password (or registry_password_file); nothing was changed on the host") from None


def image(s: Settings, t: Target, p: docker.Provider, digest: str) -> docker.RemoteImage:
    """The image on the host: pulled again when its tag moved to another digest; an image
    already there is only found (a missing one fails before anything changes)."""
    return docker.RemoteImage(named("image", t), name=s.full_image, keep_locally=True,
                              pull_triggers=[digest] if digest else None,
                              opts=pulumi.ResourceOptions(provider=p))


def volumes(s: Settings, t: Target, p: docker.Provider) -> list[docker.Volume]:
    return [docker.Volume(named(f"volume-{name}", t), name=name,
                          opts=pulumi.ResourceOptions(provider=p, retain_on_delete=True))
            for name in s.named_volumes]
