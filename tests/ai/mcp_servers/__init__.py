"""Real MCP servers and workflows for the MCP tests, and helpers that run them as processes."""
