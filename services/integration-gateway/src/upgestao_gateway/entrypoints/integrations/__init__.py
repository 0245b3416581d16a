"""The gateway's integrations routes (issue 15)."""
