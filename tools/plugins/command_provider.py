"""The `command` resource provider plugin (`pulumi-resource-command`), remote half.

Serves `command:remote:Command` to the `pulumi_command` SDK with the lifecycle of
pulumi-command 1.2.1: `create` runs on creation, `update` (or else `create`) when an
input changes, `delete` on deletion, a change of `triggers` replaces the resource;
outputs echo the inputs plus the script's `stdout` and `stderr`. Read returns the
stored state (the upstream provider has no read either).

Connections use paramiko. A `hostKey` (an OpenSSH public key line) is enforced when
given; without one, as upstream, any host key is accepted.
"""

import io
import secrets
import shlex
import sys
import time
import traceback
from concurrent import futures
from threading import Event

import grpc
import paramiko
from google.protobuf import empty_pb2, json_format, struct_pb2
from lifeline import exit_with_parent
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

VERSION = "1.2.1"
REMOTE_COMMAND = "command:remote:Command"
INPUTS = ("connection", "create", "update", "delete", "environment", "stdin",
          "triggers", "logging", "addPreviousOutputInEnv")
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


class CommandError(Exception):
    pass


def to_dict(struct) -> dict:
    return json_format.MessageToDict(struct) if struct is not None else {}


def to_struct(value: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


def _load_key(text: str, password):
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text), password=password)
        except paramiko.SSHException:
            continue
    raise CommandError("privateKey: not a supported OpenSSH private key (ed25519, ecdsa, rsa)")


def connect(conn: dict) -> paramiko.SSHClient:
    host = conn["host"]
    port = int(conn.get("port", 22))
    client = paramiko.SSHClient()
    pinned = conn.get("hostKey")
    if pinned:
        # Verified during the key exchange, before any credential is sent.
        entry = host if port == 22 else f"[{host}]:{port}"
        line = paramiko.hostkeys.HostKeyEntry.from_line(f"{entry} {pinned}")
        if line is None:
            raise CommandError("hostKey: expected an OpenSSH public key line, e.g. 'ssh-ed25519 AAAA...'")
        client.get_host_keys().add(entry, line.key.get_name(), line.key)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    else:
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    pkey = None
    if conn.get("privateKey"):
        pkey = _load_key(conn["privateKey"], conn.get("privateKeyPassword"))
    limit = int(conn.get("dialErrorLimit", 10))
    timeout = float(conn.get("perDialTimeout", 15))
    attempt = 0
    while True:
        attempt += 1
        try:
            client.connect(host, port=port, username=conn.get("user", "root"), pkey=pkey,
                           password=conn.get("password"), timeout=timeout,
                           allow_agent=False, look_for_keys=False)
            return client
        except paramiko.BadHostKeyException as err:
            raise CommandError(f"ssh {host}:{port}: host key mismatch: the server offered "
                               f"{err.key.get_name()} {err.key.get_base64()}, not the pinned hostKey")
        except paramiko.SSHException as err:
            if "not found in known_hosts" in str(err) or isinstance(err, paramiko.AuthenticationException):
                raise CommandError(f"ssh {host}:{port}: {err}")
            if limit != -1 and attempt >= limit:
                raise CommandError(f"ssh {host}:{port}: {err} (after {attempt} attempts)")
            time.sleep(min(attempt, 5))
        except Exception as err:  # network errors: retry like upstream's dial loop
            if limit != -1 and attempt >= limit:
                raise CommandError(f"ssh {host}:{port}: {err} (after {attempt} attempts)")
            time.sleep(min(attempt, 5))


def run(props: dict, script: str) -> dict:
    """Runs `script` with `sh -c` on the remote host; returns stdout/stderr."""
    env = dict(props.get("environment") or {})
    if props.get("addPreviousOutputInEnv", True):
        env.setdefault("PULUMI_COMMAND_STDOUT", props.get("stdout", ""))
        env.setdefault("PULUMI_COMMAND_STDERR", props.get("stderr", ""))
    prelude = "".join(f"export {k}={shlex.quote(str(v))}\n" for k, v in sorted(env.items())
                      if k.isidentifier())
    client = connect(props["connection"])
    try:
        stdin, stdout, stderr = client.exec_command("sh -c " + shlex.quote(prelude + script))
        if props.get("stdin"):
            stdin.write(props["stdin"])
        stdin.channel.shutdown_write()
        out = stdout.read().decode(errors="replace")
        err = stderr.read().decode(errors="replace")
        code = stdout.channel.recv_exit_status()
    finally:
        client.close()
    if code != 0:
        raise CommandError(f"Process exited with status {code}\nstdout: {out}\nstderr: {err}")
    return {"stdout": out.rstrip("\n"), "stderr": err.rstrip("\n")}


def _grpc_errors(fn):
    def wrapper(self, request, context):
        try:
            return fn(self, request, context)
        except CommandError as err:
            context.abort(grpc.StatusCode.UNKNOWN, str(err))
        except Exception:
            context.abort(grpc.StatusCode.UNKNOWN, traceback.format_exc())
    return wrapper


def _check_type(type_token: str):
    if type_token and type_token != REMOTE_COMMAND:
        raise CommandError(f"{type_token} is not provided by this plugin (only {REMOTE_COMMAND})")


class CommandProvider(provider_pb2_grpc.ResourceProviderServicer):
    def GetPluginInfo(self, request, context):
        return plugin_pb2.PluginInfo(version=VERSION)

    def Handshake(self, request, context):
        return provider_pb2.ProviderHandshakeResponse()

    def GetSchema(self, request, context):
        return provider_pb2.GetSchemaResponse(schema="{}")

    def CheckConfig(self, request, context):
        return provider_pb2.CheckResponse(inputs=request.news)

    def DiffConfig(self, request, context):
        return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)

    def Configure(self, request, context):
        return provider_pb2.ConfigureResponse(acceptSecrets=False, supportsPreview=False)

    def Cancel(self, request, context):
        return empty_pb2.Empty()

    @_grpc_errors
    def Check(self, request, context):
        _check_type(request.type)
        news = to_dict(request.news)
        conn = news.get("connection")
        if isinstance(conn, dict):
            conn.setdefault("user", "root")
            conn.setdefault("port", 22)
            conn.setdefault("dialErrorLimit", 10)
        failures = []
        if not isinstance(conn, dict) or not conn.get("host"):
            failures.append(provider_pb2.CheckFailure(property="connection",
                                                      reason="connection.host is required"))
        return provider_pb2.CheckResponse(inputs=to_struct(news), failures=failures)

    @_grpc_errors
    def Diff(self, request, context):
        olds, news = to_dict(request.olds), to_dict(request.news)
        changed = [k for k in INPUTS if olds.get(k) != news.get(k)]
        replaces = [k for k in changed if k == "triggers"]
        detailed = {k: provider_pb2.PropertyDiff(
            kind=provider_pb2.PropertyDiff.UPDATE_REPLACE if k in replaces
            else provider_pb2.PropertyDiff.UPDATE) for k in changed}
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME if changed else provider_pb2.DiffResponse.DIFF_NONE,
            diffs=changed, replaces=replaces, detailedDiff=detailed, hasDetailedDiff=True)

    @_grpc_errors
    def Create(self, request, context):
        _check_type(request.type)
        props = to_dict(request.properties)
        outs = dict(props, stdout="", stderr="")
        if props.get("create") and not request.preview:
            outs.update(run(props, props["create"]))
        return provider_pb2.CreateResponse(id=f"{request.name or 'command'}{secrets.token_hex(4)}",
                                           properties=to_struct(outs))

    @_grpc_errors
    def Update(self, request, context):
        olds, news = to_dict(request.olds), to_dict(request.news)
        outs = dict(news, stdout=olds.get("stdout", ""), stderr=olds.get("stderr", ""))
        script = news.get("update") or news.get("create")
        if script and not request.preview:
            outs.update(run(dict(news, stdout=outs["stdout"], stderr=outs["stderr"]), script))
        return provider_pb2.UpdateResponse(properties=to_struct(outs))

    @_grpc_errors
    def Delete(self, request, context):
        props = to_dict(request.properties)
        if props.get("delete"):
            run(props, props["delete"])
        return empty_pb2.Empty()

    @_grpc_errors
    def Read(self, request, context):
        return provider_pb2.ReadResponse(id=request.id, properties=request.properties,
                                         inputs=request.inputs)


def main() -> None:
    exit_with_parent()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(CommandProvider(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    try:
        Event().wait()
    except KeyboardInterrupt:  # the CLI interrupts its plugins when it is done
        server.stop(0)


if __name__ == "__main__":
    main()
