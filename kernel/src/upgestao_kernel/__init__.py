"""UpGestão kernel: what every service needs and nothing else.

Modules are small and named for what they hold; the domain-facing parts
(``events``, ``eventstore``, ``projections``, ``outbox``, ``vault``, ``audit``)
know nothing of nameko or eventlet. nameko lives in ``upgestao_kernel.nameko_ext`` (and the
command line, ``cli``, that starts it); the root pyproject.toml's import-linter contracts check it.
"""
