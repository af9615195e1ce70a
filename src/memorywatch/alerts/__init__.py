"""Prometheus alerting and recording rules for the agent fleet's Redis memory, one module per
alert group, built from `memorywatch.thresholds` and the names in `memorywatch.names`."""
