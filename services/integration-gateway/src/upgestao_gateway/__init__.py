"""UpGestão integration gateway: the HTTP front door of the platform.

It owns the public HTTP API (routing, authentication, validation, problem
details, request ids) and turns requests into RPC calls to the services.
"""
