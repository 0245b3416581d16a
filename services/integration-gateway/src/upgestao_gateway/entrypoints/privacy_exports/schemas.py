"""marshmallow schemas of the privacy export routes: an erasure's progress (ids, service names, states)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

PARTICIPANT_STATES = ("pending", "confirmed")


class ErasureProgressSchema(Schema):
    request_id = fields.String(required=True)
    subject_id = fields.String(required=True)
    mode = fields.String(required=True, validate=validate.OneOf(("deletion", "anonymisation", "blocking")))
    participants = fields.Dict(keys=fields.String(), values=fields.String(validate=validate.OneOf(PARTICIPANT_STATES)),
                               required=True, metadata={"description": "service -> pending | confirmed"})
    pending = fields.List(fields.String(), required=True)
    recipients = fields.List(fields.String(), required=True,
                             metadata={"description": "third parties that received the person's data, told (R4.3)"})
    completed = fields.Boolean(required=True)
    privacy_shredded = fields.Boolean(required=True)
    lifted = fields.Boolean(required=True, metadata={"description": "a blocking the DPO lifted since"})
