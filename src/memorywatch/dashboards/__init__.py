"""Grafana dashboards, generated with grafanalib: `memorywatch dashboards generate`."""
