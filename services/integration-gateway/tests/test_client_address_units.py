"""The client's address through trusted proxies only, and the edge settings (issue 11, finding 3)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from upgestao_gateway.domain.client_address import MAX_HOPS, client_address, parse_address, parse_networks
from upgestao_gateway.entrypoints.http.server import GatewayApp
from upgestao_gateway.settings import load_edge_settings
from upgestao_kernel.config import ConfigError

INGRESS = parse_networks("10.0.0.0/8, 2001:db8:ffff::/48")


@pytest.mark.parametrize("peer, forwarded, expected", [
    # no proxy trusted, or a peer that is not one: the peer, whatever the header says
    ("198.51.100.7", "203.0.113.9", "198.51.100.7"),
    ("198.51.100.7", None, "198.51.100.7"),
    # through the ingress: the address it appended, not what the client wrote before it
    ("10.1.2.3", "203.0.113.9", "203.0.113.9"),
    ("10.1.2.3", "1.2.3.4, 5.6.7.8, 203.0.113.9", "203.0.113.9"),
    ("10.1.2.3", "1.2.3.4, 203.0.113.9, 10.9.9.9", "203.0.113.9"),  # two trusted hops
    ("10.1.2.3", "  203.0.113.9:4711 ", "203.0.113.9"),
    ("10.1.2.3", "[2001:db8::5]:443", "2001:db8::5"),
    ("10.1.2.3", "::ffff:203.0.113.9", "203.0.113.9"),
    ("2001:db8:ffff::1", "2001:db8::5", "2001:db8::5"),
    # the ingress with no header is the client (a probe from inside)
    ("10.1.2.3", None, "10.1.2.3"),
    ("10.1.2.3", "", "10.1.2.3"),
    # a malformed entry stops the walk: the last good address
    ("10.1.2.3", "203.0.113.9, unknown", "10.1.2.3"),
    ("10.1.2.3", "garbage, 203.0.113.9, 10.4.4.4", "203.0.113.9"),
    ("10.1.2.3", "203.0.113.9, 10.4.4.4:99999", "10.1.2.3"),
    # every hop trusted: the first one
    ("10.1.2.3", "10.4.4.4, 10.5.5.5", "10.4.4.4"),
    # no IP peer (a unix socket): none
    ("", "203.0.113.9", None),
    (None, None, None),
])
def test_the_client_address_is_believed_only_from_trusted_proxies(peer, forwarded, expected):
    assert client_address(peer, forwarded, INGRESS) == expected


def test_without_trusted_proxies_the_header_means_nothing():
    assert client_address("127.0.0.1", "203.0.113.9", ()) == "127.0.0.1"


def test_the_walk_is_bounded():
    chain = ", ".join(["203.0.113.9"] + ["10.0.0.1"] * (MAX_HOPS + 5))
    assert client_address("10.1.2.3", chain, INGRESS) == "10.0.0.1"


@pytest.mark.parametrize("raw", ["", "localhost", "1.2.3", "1.2.3.4:", "1.2.3.4:x", "[::1", "[::1]x", "::1]:80"])
def test_what_is_not_an_address(raw):
    assert parse_address(raw) is None


def test_edge_settings_default_to_no_proxy_and_loopback_operators():
    edge = load_edge_settings({})
    assert edge.trusted_proxies == ()
    assert [str(n) for n in edge.ops_networks] == ["127.0.0.0/8", "::1/128"]
    edge = load_edge_settings({"GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8,192.0.2.7", "GATEWAY_OPS_NETWORKS": ""})
    assert [str(n) for n in edge.trusted_proxies] == ["10.0.0.0/8", "192.0.2.7/32"] and edge.ops_networks == ()


@pytest.mark.parametrize("variable, value, message", [
    ("GATEWAY_TRUSTED_PROXIES", "10.0.0.1/8", "has host bits set"),
    ("GATEWAY_TRUSTED_PROXIES", "ingress.local", "not a network in CIDR form"),
    ("GATEWAY_OPS_NETWORKS", "10.0.0.0/33", "not a network in CIDR form"),
])
def test_bad_edge_settings_name_the_variable(variable, value, message):
    with pytest.raises(ConfigError, match=message) as raised:
        load_edge_settings({variable: value})
    assert raised.value.variable == variable


@pytest.mark.parametrize("peer, forwarded, client, operator", [
    ("127.0.0.1", None, "127.0.0.1", True),  # a local curl, kubectl port-forward: an operator
    ("127.0.0.1", "203.0.113.9", "127.0.0.1", True),  # its header is ignored (not a trusted proxy)
    ("10.1.2.3", "203.0.113.9", "203.0.113.9", False),  # relayed by the ingress: public, whatever it says
    ("10.1.2.3", "127.0.0.1", "127.0.0.1", False),  # ... even when it claims loopback
    ("192.0.2.50", None, "192.0.2.50", False),  # a kubelet probe from the node: public
    ("::1", None, "::1", True),
])
def test_who_the_request_comes_from_and_whether_it_is_an_operator(peer, forwarded, client, operator):
    server = SimpleNamespace(edge=load_edge_settings({"GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8"}))
    request = SimpleNamespace(client_address=None, operator=None)
    environ = {"REMOTE_ADDR": peer, **({"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {})}
    GatewayApp.identify_client(SimpleNamespace(server=server), request, environ)
    assert (request.client_address, request.operator) == (client, operator)


def test_a_proxy_on_loopback_is_never_an_operator():
    """A sidecar proxy (Envoy, istio) connects from loopback: named as a trusted proxy, what it relays is
    public; the operator networks are for direct requests only."""
    server = SimpleNamespace(edge=load_edge_settings({"GATEWAY_TRUSTED_PROXIES": "127.0.0.6/32"}))
    request = SimpleNamespace(client_address=None, operator=None)
    GatewayApp.identify_client(SimpleNamespace(server=server), request,
                               {"REMOTE_ADDR": "127.0.0.6", "HTTP_X_FORWARDED_FOR": "198.51.100.4"})
    assert (request.client_address, request.operator) == ("198.51.100.4", False)
