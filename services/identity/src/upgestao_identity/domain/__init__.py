"""Identity domain: aggregates, the data map, roles and pure policies (no nameko, no eventlet)."""
