"""Canary deployments of a Docker app behind nginx, as a Pulumi program."""

from canary.program import main

main()
