"""Put on PYTHONPATH of a traced stack (bench/overhead.py): the stack's Python processes
start bench/tracer.py when CANARY_BENCH_TRACE names its output file."""

import os

if os.environ.get("CANARY_BENCH_TRACE"):
    from bench import tracer

    tracer.install()
