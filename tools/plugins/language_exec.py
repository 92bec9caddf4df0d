"""Runs a Pulumi Python program against the engine (started by language_host.py).

Configures the SDK's runtime from the arguments and PULUMI_CONFIG, then executes the
program file the way `python __main__.py` would, inside the SDK's stack context.
"""

import argparse
import asyncio
import logging
import os
import runpy
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor

import pulumi
import pulumi.runtime
from lifeline import exit_with_parent

EXIT_SHOWN_TO_USER = 32


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Execute a Pulumi Python program")
    for flag in ("project", "root_directory", "stack", "parallel", "dry_run", "pwd",
                 "monitor", "engine", "organization"):
        ap.add_argument("--" + flag)
    ap.add_argument("PROGRAM")
    ap.add_argument("ARGS", nargs="*")
    return ap.parse_args(argv)


def main(argv) -> int:
    exit_with_parent()
    args = parse_args(argv)
    pulumi.runtime.set_all_config(pulumi.runtime.get_config_env(),
                                  pulumi.runtime.get_config_secret_keys_env())
    settings = pulumi.runtime.Settings(
        monitor=args.monitor, engine=args.engine, project=args.project, stack=args.stack,
        parallel=int(args.parallel or 0), dry_run=args.dry_run == "true",
        organization=args.organization, root_directory=args.root_directory)
    pulumi.runtime.configure(settings)
    if args.pwd:
        os.chdir(args.pwd)
    program = args.PROGRAM
    if os.path.isdir(program):
        program = os.path.join(program, "__main__.py")
    sys.argv = [program, *args.ARGS]
    sys.path.insert(0, os.path.dirname(os.path.abspath(program)))

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    executor = ThreadPoolExecutor(max_workers=max(settings.parallel or 1, 1) * 4)
    loop.set_default_executor(executor)
    # Unobserved futures of a failed program are expected; asyncio's warnings about them
    # would only hide the real error.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    code = 1
    try:
        loop.run_until_complete(
            pulumi.runtime.run_in_stack(lambda: runpy.run_path(program, run_name="__main__")))
        code = 0
    except pulumi.RunError as err:
        pulumi.log.error(str(err))
    except Exception:
        pulumi.log.error("Program failed with an unhandled exception:\n" + traceback.format_exc())
        code = EXIT_SHOWN_TO_USER
    finally:
        executor.shutdown(wait=True)
        loop.close()
        sys.stdout.flush()
        sys.stderr.flush()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
