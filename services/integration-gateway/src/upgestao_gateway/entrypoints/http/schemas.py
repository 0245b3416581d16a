"""marshmallow schemas every route shares: the problem document, and a pattern matched as OpenAPI does."""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate


class Pattern(validate.Regexp):
    """``validate.Regexp`` that must match the whole value, as the OpenAPI ``pattern`` it is documented
    as does (ECMA-262): Python's ``$`` also matches before a final newline, so ``re.match`` would
    accept ``"value\\n"`` where the document refuses it."""

    def __init__(self, pattern: str, error: str | None = None) -> None:
        super().__init__(pattern, error=error)

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str) or self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class FieldErrorSchema(Schema):
    field = fields.String(required=True, metadata={"description": "Dotted path of the invalid field."})
    message = fields.String(required=True)


class ProblemSchema(Schema):
    """RFC 9457 problem details (extension members allowed)."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True, metadata={"format": "uri", "description": "Identifies the problem type."})
    title = fields.String(required=True, metadata={"description": "Short summary of the problem type."})
    status = fields.Integer(required=True)
    detail = fields.String(required=True, metadata={"description": "Explanation of this occurrence."})
    instance = fields.String(required=True, metadata={"description": "The request path."})
    request_id = fields.String(metadata={"description": "The request id (also in X-Request-ID)."})
    errors = fields.List(fields.Nested(FieldErrorSchema), metadata={"description": "Validation failures."})
    checks = fields.Dict(keys=fields.String(), values=fields.String(),
                         metadata={"description": "Readiness checks and their state (ok or down)."})
