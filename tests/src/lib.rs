//! End-to-end test support for mcp-chat (filled in with the adapters).
