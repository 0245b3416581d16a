"""``push_view``: the RPC the gateway's live push calls (:mod:`..service_layer.push`), mixed into the service.

The viewers come as access tokens, each verified here as a request's token is (:class:`ViewerTokens`: the
kernel's verifier, identity's pinned or fetched public keys), never as ids the gateway vouches for; the
caller must be the gateway's broker user (the service layer checks ``caller_service``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from nameko.extensions import DependencyProvider
from upgestao_kernel.access_tokens import AccessClaims
from upgestao_kernel.config import load_settings
from upgestao_kernel.nameko_ext import rpc
from upgestao_kernel.nameko_ext.database import fetch_identity_keys
from upgestao_kernel.nameko_ext.principals import Principals, pinned_keys

from ..service_layer.access import Deps
from ..service_layer.push import PushViews


class ViewerTokens(DependencyProvider):
    """``self.push_tokens``: verifies a viewer's access token (``None`` for one that does not verify)."""

    principals: Principals | None = None

    def setup(self) -> None:
        settings = load_settings(self.container.service_name)
        config = dict(self.container.config)
        self.principals = Principals(pinned_keys(settings, os.environ), fetch=lambda: fetch_identity_keys(config))

    def get_dependency(self, worker_ctx) -> Callable[[str], AccessClaims | None]:
        return self.principals.claims


class PushRpc:
    """Mixed into ``MessagingService``: its ``push_deps()`` (the use cases' dependencies) serves here too."""

    push_tokens = ViewerTokens()

    def push_deps(self) -> Deps:
        """The service's use-case dependencies (``MessagingService`` builds them for every method)."""
        raise NotImplementedError(f"{type(self).__name__} must provide push_deps()")

    @rpc
    def push_view(self, items: Any, viewers: Any) -> dict:
        """``{"items": [{"viewer", "seq", "type", "data"}]}``: what each viewer may be pushed of the events."""
        return PushViews(self.push_deps(), self.push_tokens).push_view(items, viewers)
