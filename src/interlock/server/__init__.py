"""The HTTP API (`interlock serve`). See docs/server.md."""
