"""Framework integrations: optional extras that bring the SDK's guarantees to agent frameworks."""
