"""The notification routes of the gateway: the notifier's delivery records over HTTP.

Every e-mail the platform sends is a delivery record per (event, recipient), kept by the
notifier with its state (queued, sending, sent, soft_failed, hard_failed, suppressed), its
attempts and last error. These routes list them (by event, campaign, recipient, state) and
count a campaign's by state: the progress of a breach notice to every affected person.

Both need ``notifications.read`` (admin and dpo); the notifier checks it again. The answers
hold ids, states and instants, never an address or a message: ``personal_data=False``.
"""

from __future__ import annotations

from ..http.request import GatewayRequest
from ..http.routing import route
from .schemas import CampaignSchema, DeliveriesQuerySchema, DeliveryPageSchema, delivery_filters

NOTIFICATIONS = ("notifications",)
PERMISSION = "notifications.read"


class NotificationRoutes:
    """Mixed into the gateway service (which provides ``self.rpc``)."""

    @route("GET", "/v1/notifications/deliveries", personal_data=False, query=DeliveriesQuerySchema,
           response=DeliveryPageSchema, auth="required", permission=PERMISSION, errors=(503,), tags=NOTIFICATIONS,
           summary="Search the e-mail deliveries (newest first, cursor pagination)",
           description="Filters combine (AND); with none, every delivery. One delivery is one e-mail to one "
                       "recipient for one event: ids, state and attempts only.")
    def search_deliveries(self, request: GatewayRequest, query: dict) -> dict:
        return self.rpc.notifier.deliveries(delivery_filters(query), query["limit"], query.get("cursor"))

    @route("GET", "/v1/notifications/campaigns/<uuid:campaign_id>", personal_data=False, response=CampaignSchema,
           auth="required", permission=PERMISSION, errors=(404, 503), tags=NOTIFICATIONS,
           summary="A campaign's progress: how many of its e-mails are in each state")
    def notification_campaign(self, request: GatewayRequest, campaign_id) -> dict:
        return self.rpc.notifier.campaign(str(campaign_id))
