"""memorywatch for agent frameworks: their persistence interfaces on the memorywatch schema.

Each framework lives in its own subpackage and needs its extra (``memorywatch[langgraph]``, ...);
importing this package alone pulls no framework.
"""
