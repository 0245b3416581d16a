"""Messaging's own settings, from the environment, validated at start (``check-config`` runs them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from upgestao_kernel.config import Settings
from upgestao_kernel.config import float_setting as _float
from upgestao_kernel.config import int_setting as _int

from .adapters.search_index import load_search_key


@dataclass(frozen=True)
class MessagingSettings:
    edit_window_s: int = 900  # how long an author may edit or delete a message (moderators: any time)
    snooze_sweep_interval_s: float = 5.0  # how often snoozed conversations whose time has come are reopened
    search_key: bytes = b""  # the HMAC key of the search index's terms (H4's ``MESSAGING_SEARCH_KEY``)

    def __repr__(self) -> str:  # never the key
        return (f"MessagingSettings(edit_window_s={self.edit_window_s}, "
                f"snooze_sweep_interval_s={self.snooze_sweep_interval_s})")


def load_messaging_settings(settings: Settings, environ: Mapping[str, str] | None = None) -> MessagingSettings:
    env = os.environ if environ is None else environ
    return MessagingSettings(
        edit_window_s=_int(env, "MESSAGING_EDIT_WINDOW_S", 900, 0, 30 * 86_400),
        snooze_sweep_interval_s=_float(env, "MESSAGING_SNOOZE_SWEEP_INTERVAL_S", 5.0, 0.05, 3600.0),
        search_key=load_search_key(settings, env),
    )


def check_config(settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """Everything messaging's ``run`` validates: the edit window, the sweep interval, the search key."""
    load_messaging_settings(settings, environ)
