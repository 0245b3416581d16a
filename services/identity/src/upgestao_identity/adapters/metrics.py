"""Identity's own series (issue 18): the bcrypt pool and the logins. Label values are fixed enums."""

from __future__ import annotations

from upgestao_kernel.metrics import counter, gauge

BCRYPT_QUEUE_DEPTH = gauge("upgestao_bcrypt_queue_depth", "Password checks waiting for a bcrypt slot.")
BCRYPT_REFUSED = counter("upgestao_bcrypt_refused_total",
                         "Password checks refused at once (503) because the bcrypt queue was full.")
LOGIN_OUTCOMES = ("ok", "invalid", "locked", "throttled")
LOGIN_ATTEMPTS = counter("upgestao_login_attempts_total",
                         "Logins by outcome: ok, invalid (wrong e-mail or password, or a deactivated account), "
                         "locked (the account's budget blocked), throttled (the address's budget blocked).",
                         ["outcome"])
LOGIN_LOCKOUTS = counter("upgestao_login_lockouts_total",
                         "Times an account was locked out (a back-off started after failed logins).")
for _outcome in LOGIN_OUTCOMES:
    LOGIN_ATTEMPTS.labels(outcome=_outcome)


def login_attempt(outcome: str) -> None:
    LOGIN_ATTEMPTS.labels(outcome=outcome).inc()
