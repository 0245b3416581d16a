"""The gateway's api_keys routes (issue 15)."""
