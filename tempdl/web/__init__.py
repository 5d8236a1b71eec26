"""The HTTP side: thin Tornado handlers and the streaming, throttling and logging they share."""
