"""Python language host for the Pulumi CLI (`pulumi-language-python`).

The CLI starts this plugin with the engine's address as its last argument, reads the
port it listens on from the first line of stdout, then calls it over gRPC to learn the
program's plugins and to run the program. Running a program means starting
`language_exec.py` with the project's virtualenv Python; that script connects the
Pulumi SDK to the resource monitor and executes `__main__.py`.

Plugins are installed by the project's setup script, so `GetRequiredPlugins` reports
none: the engine loads the `command` provider on first use of its resources.
"""

import json
import os
import queue
import subprocess
import sys
import threading
from concurrent import futures

import grpc
from google.protobuf import empty_pb2
from lifeline import exit_with_parent
from pulumi.runtime.proto import language_pb2, language_pb2_grpc, plugin_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
EXECUTOR = os.path.join(HERE, "language_exec.py")
# The executor exits with this code after it has shown the user an error itself.
EXIT_SHOWN_TO_USER = 32


def _options(info) -> dict:
    if info is None or not info.HasField("options"):
        return {}
    return {k: v for k, v in info.options.items()}


def python_for(info, root: str) -> str:
    """The interpreter of the project's virtualenv (runtime option `virtualenv`)."""
    venv = _options(info).get("virtualenv")
    if venv:
        venv = venv if os.path.isabs(venv) else os.path.join(root, venv)
        python = os.path.join(venv, "bin", "python")
        if not os.path.exists(python):
            raise FileNotFoundError(
                f"The virtualenv {venv} named in Pulumi.yaml does not exist; run the project's setup script"
            )
        return python
    return os.environ.get("PULUMI_PYTHON_CMD", sys.executable)


class LanguageHost(language_pb2_grpc.LanguageRuntimeServicer):
    def __init__(self, engine_address: str):
        self.engine_address = engine_address
        self.root = os.getcwd()
        self.running = None

    def Handshake(self, request, context):
        self.engine_address = request.engine_address or self.engine_address
        if request.HasField("root_directory"):
            self.root = request.root_directory
        return language_pb2.LanguageHandshakeResponse()

    def GetPluginInfo(self, request, context):
        return plugin_pb2.PluginInfo(version=_sdk_version())

    def GetRequiredPlugins(self, request, context):
        return language_pb2.GetRequiredPluginsResponse()

    def GetRequiredPackages(self, request, context):
        return language_pb2.GetRequiredPackagesResponse()

    def InstallDependencies(self, request, context):
        # Dependencies come from requirements.txt via the project's setup script.
        return iter(())

    def About(self, request, context):
        root = request.info.root_directory if request.HasField("info") else self.root
        python = python_for(request.info if request.HasField("info") else None, root)
        return language_pb2.AboutResponse(executable=python, version=_python_version(python))

    def GetProgramDependencies(self, request, context):
        return language_pb2.GetProgramDependenciesResponse()

    def Run(self, request, context):
        info = request.info if request.HasField("info") else None
        root = info.root_directory if info and info.root_directory else (request.pwd or self.root)
        program = request.program or (info.entry_point if info else ".")
        try:
            python = python_for(info, root)
        except FileNotFoundError as err:
            return language_pb2.RunResponse(error=str(err))
        args = [
            python, "-u", EXECUTOR,
            "--monitor", request.monitor_address,
            "--engine", self.engine_address,
            "--project", request.project,
            "--stack", request.stack,
            "--root_directory", root,
            "--parallel", str(request.parallel),
            "--dry_run", "true" if request.dryRun else "false",
        ]
        if request.organization:
            args += ["--organization", request.organization]
        if request.pwd:
            args += ["--pwd", request.pwd]
        args += [program, *request.args]
        env = dict(os.environ)
        env["PULUMI_CONFIG"] = json.dumps(dict(request.config))
        env["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(list(request.configSecretKeys))
        env["PULUMI_PROJECT"] = request.project
        env["PULUMI_STACK"] = request.stack
        # The program's output goes to ours, which the engine shows to the user.
        proc = subprocess.Popen(args, env=env, cwd=request.pwd or root)
        self.running = proc
        code = proc.wait()
        self.running = None
        if code == 0:
            return language_pb2.RunResponse()
        if code == EXIT_SHOWN_TO_USER:
            return language_pb2.RunResponse(bail=True)
        return language_pb2.RunResponse(error=f"Program exited with non-zero exit code: {code}")

    def RunPlugin(self, request, context):
        """Runs a plugin written in Python, e.g. a policy pack: `python DIR ARGS...` (its
        __main__.py), streaming its output; the engine reads the plugin's port from it."""
        info = request.info
        root = info.root_directory or info.program_directory
        python = python_for(info, root)
        env = dict(os.environ)
        env.update(e.split("=", 1) for e in request.env if "=" in e)
        proc = subprocess.Popen([python, "-u", info.program_directory, *request.args],
                                cwd=request.pwd or root, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        context.add_callback(proc.kill)  # the engine is done with the plugin
        chunks: queue.Queue = queue.Queue()

        def pump(stream, field):
            for chunk in iter(lambda: stream.read1(65536), b""):
                chunks.put(language_pb2.RunPluginResponse(**{field: chunk}))
            chunks.put(None)

        for stream, field in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
            threading.Thread(target=pump, args=(stream, field), daemon=True).start()
        open_streams = 2
        while open_streams:
            item = chunks.get()
            if item is None:
                open_streams -= 1
            else:
                yield item
        yield language_pb2.RunPluginResponse(exitcode=proc.wait())

    def Cancel(self, request, context):
        if self.running is not None:
            self.running.terminate()
        return empty_pb2.Empty()


def _sdk_version() -> str:
    try:
        from importlib.metadata import version
        return version("pulumi")
    except Exception:
        return ""


def _python_version(python: str) -> str:
    out = subprocess.run([python, "--version"], capture_output=True, text=True)
    return out.stdout.strip().replace("Python ", "")


def main() -> None:
    exit_with_parent()
    engine_address = next((a for a in reversed(sys.argv[1:]) if not a.startswith("-")), "")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         options=[("grpc.max_receive_message_length", 400 * 1024 * 1024)])
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(LanguageHost(engine_address), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:  # the CLI interrupts its plugins when it is done
        server.stop(0)


if __name__ == "__main__":
    main()
