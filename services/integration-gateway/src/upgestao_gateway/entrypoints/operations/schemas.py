"""marshmallow schemas of the gateway's own answers: liveness, readiness, ping."""

from __future__ import annotations

from marshmallow import Schema, fields


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})


class ReadySchema(Schema):
    status = fields.String(required=True, metadata={"example": "ready"})
    checks = fields.Dict(keys=fields.String(), values=fields.String(),
                         metadata={"description": "Operators only: each dependency and its state: ok, down, or "
                                                  "skipped (not checked: it needs the broker, which is down)."})
    unrouted_depth = fields.Integer(allow_none=True, metadata={
        "description": "Operators only: messages waiting in the broker's upgestao.unrouted queue (published "
                       "where no queue is bound); null when it cannot be read."})


class PingSchema(Schema):
    pong = fields.Boolean(required=True)
    service = fields.String(required=True, metadata={"description": "The service that answered the RPC."})
    request_id = fields.String(required=True)
