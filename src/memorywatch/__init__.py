"""memorywatch: observability for AI agent fleets that keep their memory in Redis."""

__version__ = "0.2.0"
