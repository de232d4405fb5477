"""Front doors into the Gateway for agent tools: the MCP proxy, agent hooks."""
