"""The gateway's own rules, as pure code (no nameko, eventlet, SQLAlchemy nor werkzeug).

* :mod:`.principal` — who is asking, and what their role may do;
* :mod:`.permissions` — identity's role map as the gateway reads it, and what the audit record of
  a refused request says (action, resource type, subject);
* :mod:`.revocations` — revoked sessions, remembered until their tokens must have expired;
* :mod:`.jwks` — identity's public keys as a JWKS document.
"""
