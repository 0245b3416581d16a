"""The ``rpc`` entrypoint's work per request, done as nameko's but with less: its method's signature is read once
(a request's arguments are checked as nameko checks them, and a keyed request's fingerprint is the one
``get_redacted_args`` made: a retry across a deploy must still match its stored request), and a request's
context data is its headers as nameko unpacks them."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
from nameko.containers import ServiceContainer
from nameko.exceptions import IncorrectSignature
from nameko.testing.utils import get_extension
from nameko.utils import get_redacted_args
from upgestao_kernel.keyed_requests import fingerprint
from upgestao_kernel.nameko_ext import rpc
from upgestao_kernel.nameko_ext.database import request_fingerprint
from upgestao_kernel.nameko_ext.rpc import Rpc


class ShapesService:
    name = "shapes"

    @rpc
    def plain(self, a, b):
        return a

    @rpc
    def defaults(self, conversation_id, before=None, after=None, limit=50):
        return conversation_id

    @rpc
    def keywords(self, data, *, flag=False):
        return data

    @rpc
    def varargs(self, first, *rest, **options):
        return first

    @rpc(sensitive_arguments=("password", "card.number"))
    def secret(self, user, password, card=None):
        return user


CALLS = {
    "plain": [((1, 2), {}), ((1,), {"b": {"x": [1, 2]}}), ((), {"a": "x", "b": None})],
    "defaults": [(("c-1",), {}), (("c-1", "m-9"), {}), (("c-1",), {"limit": 10, "after": "m-2"})],
    "keywords": [(({"body": "olá"},), {}), (({"body": "olá"},), {"flag": True})],
    "varargs": [((1,), {}), ((1, 2, 3), {"x": 1})],
    "secret": [(("u", "hunter2"), {}), (("u", "hunter2", {"number": "4111", "name": "A"}), {})],
}
WRONG = {
    "plain": [((1,), {}), ((1, 2, 3), {}), ((1, 2), {"c": 3}), ((1,), {"a": 1})],
    "defaults": [((), {}), (("c", 1, 2, 3, 4), {}), (("c",), {"page": 2})],
    "keywords": [(({}, True), {}), ((), {"flag": True})],
    "varargs": [((), {}), ((), {"x": 1})],
    "secret": [(("u",), {})],
}


@pytest.fixture
def container():
    return ServiceContainer(ShapesService, {"AMQP_URI": "memory://"})


def worker(entrypoint, args, kwargs):
    return SimpleNamespace(entrypoint=entrypoint, args=args, kwargs=kwargs)


def nameko_fingerprint(entrypoint, args, kwargs) -> str:
    callargs = get_redacted_args(entrypoint, *args, **kwargs)
    callargs.pop("self", None)
    return fingerprint(entrypoint.method_name, (), callargs)


def test_a_keyed_requests_fingerprint_is_the_one_nameko_redacted_arguments_made(container, monkeypatch):
    for method, calls in CALLS.items():
        entrypoint = get_extension(container, Rpc, method_name=method)
        for args, kwargs in calls:
            assert request_fingerprint(worker(entrypoint, args, kwargs)) == nameko_fingerprint(entrypoint, args, kwargs)
    # read once: no signature read again per request (the secret's redaction still goes through nameko's)
    read = []
    getcallargs = inspect.getcallargs
    monkeypatch.setattr(inspect, "getcallargs", lambda *a, **kw: read.append(a[0]) or getcallargs(*a, **kw))
    for method in ("plain", "defaults", "keywords", "varargs"):
        entrypoint = get_extension(container, Rpc, method_name=method)
        for args, kwargs in CALLS[method]:
            entrypoint.check_signature(args, kwargs)
            request_fingerprint(worker(entrypoint, args, kwargs))
    assert read == []


def test_arguments_are_refused_exactly_when_nameko_refused_them(container):
    for method in CALLS:
        entrypoint = get_extension(container, Rpc, method_name=method)
        function = getattr(ShapesService, method)
        for args, kwargs in CALLS[method]:
            entrypoint.check_signature(args, kwargs)
        for args, kwargs in WRONG[method]:
            with pytest.raises(TypeError):
                inspect.getcallargs(function, None, *args, **kwargs)
            with pytest.raises(IncorrectSignature):
                entrypoint.check_signature(args, kwargs)
            # a fingerprint is still made for them (nameko refuses the call anyway)
            assert request_fingerprint(worker(entrypoint, args, kwargs)) == fingerprint(
                method, (), {"args": list(args), "kwargs": kwargs})


def test_a_requests_context_data_is_its_headers_as_nameko_unpacks_them_with_the_caller_from_the_message(container):
    from nameko.messaging import HeaderDecoder
    from upgestao_kernel.nameko_ext.principals import stamp_caller

    entrypoint = get_extension(container, Rpc, method_name="plain")
    headers = {"nameko.request_id": "r-1", "nameko.access_token": "t.o.k", "nameko.call_id_stack": ["gateway.x.1"],
               "nameko.caller_service": "privacy", "caller_service": "identity", "other": 7, "nameko.": "empty",
               "namekoish.x": 1}
    for user_id in ("upgestao.gateway", "guest"):
        message = SimpleNamespace(headers=dict(headers), properties={"user_id": user_id})
        expected = stamp_caller(HeaderDecoder().unpack_message_headers(message), message)
        assert entrypoint.unpack_message_headers(message) == expected
    assert entrypoint.unpack_message_headers(message)["request_id"] == "r-1"
    assert "caller_service" not in entrypoint.unpack_message_headers(message)  # guest is nobody's service
    message = SimpleNamespace(headers=dict(headers), properties={"user_id": "upgestao.gateway"})
    assert entrypoint.unpack_message_headers(message)["caller_service"] == "gateway"
    assert entrypoint.unpack_message_headers(SimpleNamespace(headers=None, properties={})) == {}
