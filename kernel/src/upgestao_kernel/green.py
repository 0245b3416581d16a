"""Importing this module monkey-patches the process for eventlet (nameko needs it).

It must be the first import of a service's entry module, before anything
imports socket, threading or ssl.
"""

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()
