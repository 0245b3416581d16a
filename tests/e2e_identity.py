"""End-to-end helpers for what no API call may do (issue 11, finding 6, and finding 2).

* The first holder of a compliance role (dpo) is the operator's act: ``python -m upgestao_identity
  assign-role`` as the system, with identity's environment (an admin cannot make anyone dpo).
* A reset token, or an old e-mail address, never travels in an event: the notifier fetches it from
  identity (``identity.notice``) as its own broker user, which these helpers borrow.
"""

from __future__ import annotations

import subprocess

# as in a service: every publish carries the user_id RabbitMQ checks (what identity reads the caller from),
# and a standalone proxy's reply queue is named after its broker user's service (the only one it may read)
import upgestao_kernel.nameko_ext  # noqa: F401
from e2e_api import PASSWORD, Api


def assign_role(platform, user_id: str, role: str) -> None:
    """Give ``user_id`` the ``role`` as the system (identity's ``assign-role`` command)."""
    result = subprocess.run([platform.python, "-m", "upgestao_identity", "assign-role", "--user-id", user_id,
                             "--role", role], env=platform.environment("identity"), stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def create_dpo(platform, api: Api, admin_token: str, **over) -> tuple[dict, dict]:
    """(a new staff user holding the dpo role, its login tokens): created by the admin, made dpo by the system."""
    user, _ = api.create_staff(admin_token, "attendant", **over)
    assign_role(platform, user["id"], "dpo")
    user = {**user, "role": "dpo"}
    return user, api.tokens(user["email"], over.get("password", PASSWORD))


def fetch_notice(platform, notice_id: str) -> dict:
    """What the notifier would send for the notice event ``notice_id`` announced (asked as the notifier), in
    the notice protocol: ``{id, kind, campaign_id, data, recipients: [{id, to, locale, name, vars}], next}``."""
    from nameko.standalone.rpc import ServiceRpcProxy

    with ServiceRpcProxy("identity", {"AMQP_URI": platform.broker_uris["notifier"]}, timeout=20) as identity:
        return identity.notice(notice_id)


def reset_token_of(notice: dict) -> str:
    """The reset token a password-reset notice gives its only recipient."""
    (recipient,) = notice["recipients"]
    return recipient["vars"]["reset_token"]
