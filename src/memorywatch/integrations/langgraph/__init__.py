"""LangGraph on memorywatch (``pip install memorywatch[langgraph]``)."""
