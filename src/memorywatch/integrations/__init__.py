"""memorywatch.integrations: the SDK's guarantees (TTL-bounded state, run locks with fencing
tokens, idempotent tools) behind the APIs of agent frameworks. Each submodule imports its
framework, installed with the matching extra (``memorywatch[openai-agents]``, ...)."""
