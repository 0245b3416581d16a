"""Fuzzing the gateway's request parsing: JSON bodies and query strings of every real route.

Each input goes through the route's own loader (the body read, the JSON parse and the route's
marshmallow schema, as a request would): the outcome is the loaded value or the documented
:class:`Problem` (400 malformed, 413 too large, 415 wrong media type, 422 naming the invalid
fields), never another exception, within a time and memory budget. Bodies built from what each
schema declares (lengths, choices, patterns, ranges) are accepted.
"""

from __future__ import annotations

import functools
import inspect
import json
from datetime import UTC, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from fuzzing import MiB, bounded, fuzz
from hypothesis import example, given
from hypothesis import strategies as st
from marshmallow import Schema, fields, validate
from upgestao_gateway.entrypoints.http import guards
from upgestao_gateway.entrypoints.http.problems import Problem
from upgestao_gateway.entrypoints.http.request import GatewayRequest
from upgestao_gateway.entrypoints.http.routing import GatewayRoute
from upgestao_gateway.service import GatewayService
from werkzeug.test import EnvironBuilder

DOCUMENTED = {400, 413, 415, 422}


def _entrypoints() -> list[GatewayRoute]:
    found = []
    for _, member in inspect.getmembers(GatewayService, inspect.isfunction):
        found += [entry for entry in getattr(member, "nameko_entrypoints", ()) if isinstance(entry, GatewayRoute)]
    return sorted(found, key=lambda entry: (entry.spec.template, entry.spec.method))


ROUTES = _entrypoints()
BODY_ROUTES = [entry for entry in ROUTES if isinstance(entry.spec.body, Schema)]
QUERY_ROUTES = [entry for entry in ROUTES if isinstance(entry.spec.query, Schema)]


def test_there_are_routes_to_fuzz():
    assert len(BODY_ROUTES) >= 10 and len(QUERY_ROUTES) >= 3, [entry.spec.template for entry in ROUTES]


# -- strategies from the schemas ------------------------------------------------------------------


def _validator(field: fields.Field, kind: type) -> Any:
    return next((v for v in field.validators if isinstance(v, kind)), None)


def _fits(value: str, length: validate.Length) -> bool:
    if length.equal is not None:
        return len(value) == length.equal
    return (length.min is None or len(value) >= length.min) and (length.max is None or len(value) <= length.max)


@functools.cache  # (built once per field: a regex strategy takes a while to build)
def valid_value(field: fields.Field) -> st.SearchStrategy[Any]:
    """Values ``field`` must accept, from its type and validators (a field type not handled here
    fails the test, so a schema using a new one gets a strategy)."""
    if isinstance(field, fields.Nested):
        strategy = valid_body(field.schema)
    elif isinstance(field, fields.List):
        length = _validator(field, validate.Length)  # a list's declared length (minItems, maxItems) too
        low = (length.equal if length.equal is not None else length.min or 0) if length else 0
        high = (length.equal if length.equal is not None else min(length.max or low + 3, low + 3)) if length else 3
        strategy = st.lists(valid_value(field.inner), min_size=low, max_size=high)
    elif isinstance(field, fields.Boolean):
        strategy = st.booleans()
    elif isinstance(field, fields.Integer):
        bounds = _validator(field, validate.Range)
        strategy = st.integers(bounds.min if bounds else None, bounds.max if bounds else None)
    elif isinstance(field, fields.AwareDateTime):
        zones = st.sampled_from([UTC, timezone(timedelta(hours=-3))])
        strategy = st.builds(lambda moment, zone: moment.replace(tzinfo=zone).isoformat(), st.datetimes(), zones)
    elif isinstance(field, fields.String):
        choices, pattern, length = (_validator(field, kind) for kind in (validate.OneOf, validate.Regexp,
                                                                          validate.Length))
        if choices:
            strategy = st.sampled_from(list(choices.choices))
        elif pattern:
            strategy = st.from_regex(pattern.regex, fullmatch=True)
            if length:  # a pattern and a length (the e-mail): a value must satisfy both
                strategy = strategy.filter(lambda value, length=length: _fits(value, length))
        elif length and length.equal is not None:
            strategy = st.text(min_size=length.equal, max_size=length.equal)
        else:
            low = length.min if length and length.min is not None else 0
            high = min(length.max, low + 40) if length and length.max is not None else low + 40
            strategy = st.text(min_size=low, max_size=high) | st.text(min_size=high, max_size=high)
    else:
        raise NotImplementedError(f"no strategy for {type(field).__name__}")
    return st.none() | strategy if field.allow_none else strategy


@functools.cache
def valid_body(schema: Schema) -> st.SearchStrategy[dict[str, Any]]:
    required, optional = {}, {}
    for name, field in schema.load_fields.items():
        (required if field.required else optional)[field.data_key or name] = valid_value(field)
    return st.fixed_dictionaries(required, optional=optional)


json_scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                | st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=16)


@st.composite
def near_valid_bodies(draw, schema: Schema) -> Any:
    """A valid body of ``schema`` with one to three members dropped, replaced, lengthened or added,
    at the top or inside a nested object or list."""
    body = draw(valid_body(schema))
    for _ in range(draw(st.integers(1, 3))):
        target = body
        while isinstance(target, dict) and target and draw(st.booleans()):
            inner = target[draw(st.sampled_from(sorted(target)))]
            if isinstance(inner, list) and inner:
                inner = inner[0]
            if not isinstance(inner, dict):
                break
            target = inner
        if not isinstance(target, dict):
            break
        change = draw(st.sampled_from(["drop", "replace", "long", "add", "null", "type"]))
        key = draw(st.sampled_from(sorted(target))) if target else draw(st.text(max_size=8))
        if change == "drop":
            target.pop(key, None)
        elif change == "replace":
            target[key] = draw(json_values)
        elif change == "long":
            target[key] = draw(st.sampled_from(["x" * 201, "x" * 1025, "é" * 255, "\x00", " ", "", "\ud800"]))
        elif change == "add":
            target[draw(st.text(max_size=12))] = draw(json_values)
        elif change == "null":
            target[key] = None
        else:
            target[key] = draw(st.sampled_from([0, -1, 2**64, 1.5, True, [], {}, [None], {"": None}]))
    return body


# -- driving the route's own loaders ----------------------------------------------------------


def load_body(entry: GatewayRoute, raw: bytes, content_type: str = "application/json") -> Any:
    """What the route makes of a request body: the loaded value, or the Problem it answers."""
    builder = EnvironBuilder(method=entry.spec.method, path="/", data=raw, content_type=content_type)
    request = GatewayRequest(builder.get_environ())
    with bounded(f"{entry.spec.method} {entry.spec.template} body", seconds=1.0, memory=64 * MiB):
        try:
            return guards.load_body(entry.spec.body, request)
        except Problem as problem:
            return problem


def check_answer(answer: Any) -> Any:
    if isinstance(answer, Problem):
        assert answer.status in DOCUMENTED, (answer.status, answer.detail)
        if answer.status == 422:
            errors = answer.extensions.get("errors")
            assert errors, "a 422 names the invalid fields"
            assert all(isinstance(e["field"], str) and isinstance(e["message"], str) for e in errors), errors
    else:
        assert isinstance(answer, dict), f"a body loaded as {type(answer).__name__}"
    return answer


def encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


@fuzz
@given(st.sampled_from(BODY_ROUTES), st.data())
def test_bodies_as_the_schema_declares_them_are_loaded(entry, data):
    body = data.draw(valid_body(entry.spec.body), label="body")
    answer = check_answer(load_body(entry, encode(body)))
    assert not isinstance(answer, Problem), (answer.status, answer.extensions.get("errors"), body)


@fuzz
@given(st.sampled_from(BODY_ROUTES), st.data())
def test_near_valid_bodies_are_loaded_or_refused_naming_the_field(entry, data):
    body = data.draw(near_valid_bodies(entry.spec.body), label="body")
    check_answer(load_body(entry, encode(body)))


@fuzz
@given(st.sampled_from(BODY_ROUTES), json_values)
def test_any_json_value_is_loaded_or_refused(entry, value):
    check_answer(load_body(entry, encode(value)))


raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.integers(1, 200_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 200_000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    st.sampled_from([b"NaN", b"Infinity", b'{"a": -Infinity}', b"1e400", b"9" * 5000, b"\xef\xbb\xbf{}",
                     b'{"a":1}\x00', b'"\\ud800"', b"{}" * 1000, b" " * 100, b"\x00" * 10]),
)


@fuzz
@given(st.sampled_from(BODY_ROUTES), raw_bodies)
@example(BODY_ROUTES[0], b"[" * 500_000)
@example(BODY_ROUTES[0], b"x" * (1024 * 1024 + 1))
def test_any_bytes_are_loaded_or_refused(entry, raw):
    check_answer(load_body(entry, raw))


@fuzz
@given(st.sampled_from(BODY_ROUTES), st.sampled_from(["text/plain", "application/json; charset=latin-1",
                                                      "application/problem+json", "multipart/form-data",
                                                      "application/x-www-form-urlencoded", ""]))
def test_other_media_types_are_refused_or_loaded_as_json(entry, content_type):
    check_answer(load_body(entry, b"{}", content_type))


# -- query strings ------------------------------------------------------------------------------------


@st.composite
def query_strings(draw, schema: Schema) -> str:
    """A query string of ``schema``'s parameters (values as they would be typed, or anything) and
    some it does not know, in any order, repeated now and then."""
    pairs = []
    names = sorted(field.data_key or name for name, field in schema.load_fields.items())
    for name in draw(st.lists(st.sampled_from(names) | st.text(max_size=8), max_size=6)):
        field = schema.load_fields.get(name) or schema.fields.get(name)
        if field is not None and draw(st.booleans()):
            value = draw(valid_value(field))
            text = json.dumps(value) if not isinstance(value, str) else value
        else:
            text = draw(st.text(max_size=30) | st.sampled_from(["-1", "0", "1", "9" * 25, "1e3", " 7", "+7", "1_0",
                                                                "2026-01-01T00:00:00 03:00", "2026-13-01", "\x00"]))
        pairs.append((name, text))
    return urlencode(pairs)


@fuzz
@given(st.sampled_from(QUERY_ROUTES), st.data())
def test_any_query_string_is_loaded_or_refused_naming_the_parameter(entry, data):
    query = data.draw(query_strings(entry.spec.query), label="query")
    request = GatewayRequest(EnvironBuilder(method=entry.spec.method, path="/", query_string=query).get_environ())
    with bounded(f"{entry.spec.method} {entry.spec.template} query", seconds=1.0, memory=16 * MiB):
        try:
            answer = guards.load_query(entry.spec.query, request)
        except Problem as problem:
            answer = problem
    check_answer(answer)
