"""The compiled dump (entrypoints.http.dumping) gives exactly what marshmallow's ``Schema.dump`` gives: for every
response schema of the gateway's routes, on payloads of every shape (keys missing, None, values of the field's
type and of others, objects that are not dicts, extra keys), and for the schema features it leaves to marshmallow."""

from __future__ import annotations

import json
import random
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from marshmallow import Schema, fields, post_dump, pre_dump
from upgestao_gateway.entrypoints.http.dumping import compile_dump
from upgestao_gateway.entrypoints.http.openapi import routes_of
from upgestao_gateway.entrypoints.messaging.schemas import MessagePageSchema
from upgestao_gateway.service import GatewayService

RESPONSE_SCHEMAS = sorted({type(spec.response): spec.response for _, spec in routes_of(GatewayService)
                           if isinstance(spec.response, Schema)}.items(), key=lambda item: item[0].__name__)

ODD_VALUES = ["", "x", "true", "no", "12", "1.5", 0, 1, 2, -7, 3.7, True, False, b"bytes", uuid.UUID(int=5),
              [], {}, ("t",), SimpleNamespace(a=1)]


def _value(field: fields.Field, r: random.Random, depth: int) -> Any:
    """A value for ``field``: mostly of its type, sometimes None or anything else."""
    roll = r.random()
    if roll < 0.1:
        return None
    if roll < 0.25:
        return r.choice(ODD_VALUES)
    if isinstance(field, fields.Nested):
        schema = field.schema
        many = schema.many or field.many
        if many:
            return [_payload(schema, r, depth + 1) for _ in range(r.randrange(4))]
        return _payload(schema, r, depth + 1)
    if isinstance(field, fields.List):
        items = [_value(field.inner, r, depth + 1) for _ in range(r.randrange(4))]
        return tuple(items) if r.random() < 0.2 else items
    if isinstance(field, fields.Boolean):
        return r.choice([True, False])
    if isinstance(field, fields.Integer):
        return r.randrange(-5, 10**6)
    if isinstance(field, fields.Dict):
        return {f"k{i}": r.choice(["v", 1, None]) for i in range(r.randrange(3))}
    return r.choice(["texto", "ação", str(uuid.uuid4()), "2026-12-02T10:00:00+00:00"])


def _payload(schema: Schema, r: random.Random, depth: int = 0) -> Any:
    data = {}
    for name, field in schema.fields.items():
        if r.random() < 0.1 or depth > 4:
            continue  # missing
        data[field.data_key or name] = _value(field, r, depth)
    if r.random() < 0.3:
        data["unexpected"] = "dropped"
    if r.random() < 0.05:
        return SimpleNamespace(**data)  # an object, read by attribute
    return data


def _outcome(dump, payload: Any) -> tuple[str, Any]:
    try:
        return "ok", json.dumps(dump(payload), default=repr)  # key order too
    except Exception as exc:  # noqa: BLE001 - the same failure is the same outcome
        return "raised", type(exc)


def test_the_gateway_has_response_schemas_to_check():
    assert len(RESPONSE_SCHEMAS) > 30
    assert any(cls is MessagePageSchema for cls, _ in RESPONSE_SCHEMAS)


@pytest.mark.parametrize(("cls", "schema"), RESPONSE_SCHEMAS, ids=[cls.__name__ for cls, _ in RESPONSE_SCHEMAS])
def test_the_compiled_dump_of_every_response_schema_is_marshmallows(cls, schema):
    dump = compile_dump(schema)
    assert dump is not schema.dump, "compiled (no response schema has dump hooks)"
    r = random.Random(cls.__name__)
    for _ in range(300):
        payload = _payload(schema, r)
        assert _outcome(dump, payload) == _outcome(schema.dump, payload), payload
    assert _outcome(dump, None) == _outcome(schema.dump, None)


def test_values_of_another_type_are_converted_as_marshmallow_converts_them():
    class S(Schema):
        s = fields.String()
        i = fields.Integer()
        b = fields.Boolean()
        n = fields.List(fields.Integer())

    dump = compile_dump(S())
    payload = {"s": 12, "i": "12", "b": "no", "n": ["3", True]}
    assert dump(payload) == S().dump(payload) == {"s": "12", "i": 12, "b": False, "n": [3, 1]}
    with pytest.raises(ValueError):
        dump({"i": "twelve"})


class Line(Schema):
    sku = fields.String()


class Featured(Schema):
    renamed = fields.String(data_key="shown")
    source = fields.String(attribute="elsewhere")
    dotted = fields.String(attribute="a.b")
    defaulted = fields.String(dump_default="d")
    method = fields.Method("compute")
    function = fields.Function(lambda obj: "f")
    pluck = fields.Pluck(Line, "sku", many=True)
    lines = fields.Nested(Line, many=True)
    only = fields.Nested(Line(only=("sku",)))
    raw = fields.Raw()
    when = fields.AwareDateTime()
    hidden = fields.String(load_only=True)

    def compute(self, obj):
        return "m"


def test_field_features_are_marshmallows():
    from datetime import UTC, datetime

    schema = Featured()
    dump = compile_dump(schema)
    payloads = [
        {"renamed": "r", "elsewhere": "e", "a": {"b": "ab"}, "pluck": [{"sku": "p"}], "lines": [{"sku": "l"}],
         "only": {"sku": "o", "x": 1}, "raw": {"any": [1]}, "when": datetime(2026, 12, 2, tzinfo=UTC),
         "hidden": "h"},
        {"shown": "not read", "defaulted": None, "source": "not read"},
        {},
        SimpleNamespace(renamed="r", elsewhere="e", lines=None),
    ]
    for payload in payloads:
        assert dump(payload) == schema.dump(payload)
    assert dump([payloads[0], payloads[2]], many=True) == schema.dump([payloads[0], payloads[2]], many=True)


def test_a_schema_with_dump_hooks_is_dumped_by_marshmallow():
    class Hooked(Schema):
        name = fields.String()

        @pre_dump
        def before(self, data, **kwargs):
            return {"name": data["name"].upper()}

        @post_dump
        def after(self, data, **kwargs):
            return {**data, "after": True}

    class Outer(Schema):
        inner = fields.Nested(Hooked)

    schema = Hooked()
    assert compile_dump(schema) == schema.dump
    assert compile_dump(Outer())({"inner": {"name": "a"}}) == {"inner": {"name": "A", "after": True}}


def test_many_is_the_schemas_unless_asked():
    schema = Line(many=True)
    dump = compile_dump(schema)
    assert dump([{"sku": "a"}, {"sku": "b"}]) == schema.dump([{"sku": "a"}, {"sku": "b"}]) == [{"sku": "a"},
                                                                                              {"sku": "b"}]
    assert dump({"sku": "a"}, many=False) == {"sku": "a"}
    assert dump(None) == schema.dump(None)


def test_a_key_holding_marshmallows_missing_is_read_as_missing():
    from marshmallow.utils import missing

    class S(Schema):
        a = fields.String(dump_default="default")
        b = fields.String()

    assert compile_dump(S())({"a": missing, "b": missing}) == S().dump({"a": missing, "b": missing}) == {
        "a": "default"}
