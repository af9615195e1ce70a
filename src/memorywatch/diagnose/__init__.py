"""`memorywatch diagnose`: the runbooks' diagnosis checks as code, run against a live Redis
(read-only) and, when given, Prometheus; causes ranked most likely first."""
