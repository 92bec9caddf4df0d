"""Health-gated analysis: evidence (probes, access log, logs, metric) and the verdict."""
