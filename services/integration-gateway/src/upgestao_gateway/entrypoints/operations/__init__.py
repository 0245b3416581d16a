"""The gateway's own routes: liveness, readiness, ping, the OpenAPI document."""
