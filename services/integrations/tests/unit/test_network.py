"""The SSRF policy: every non-public range refused (IPv4 and IPv6, with the IPv6 forms that reach IPv4),
the allow-list's networks let through, and endpoint URLs checked."""

from __future__ import annotations

import ipaddress

import pytest
from upgestao_integrations.domain.network import AllowedNetworks, check_url, parse_target, refusal

NONE = AllowedNetworks()


@pytest.mark.parametrize(("address", "reason"), [
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("169.254.0.1", "link-local"),
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.254", "CGNAT"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.1", "private"),        # documentation (TEST-NET-1)
    ("198.18.0.1", "private"),       # benchmarking
    ("192.0.0.8", "IETF"),           # IETF protocol assignments
    ("192.0.0.9", "IETF"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("febf:ffff::1", "link-local"),
    ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:10.1.2.3", "IPv4-mapped private"),
    ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
    ("::127.0.0.1", "IPv4-compatible"),
    ("::8.8.8.8", "IPv4-compatible"),
    ("64:ff9b::7f00:1", "NAT64"),       # 127.0.0.1 through NAT64
    ("64:ff9b::a9fe:a9fe", "NAT64"),    # 169.254.169.254 through NAT64
    ("64:ff9b::808:808", "NAT64"),      # even a public one: NAT64 gateways are not endpoints
    ("64:ff9b:1::1", "NAT64"),
    ("2002:7f00:1::1", "6to4 form of a loopback"),
    ("2002:a9fe:a9fe::1", "6to4 form of a link-local"),
    ("2001::1", "Teredo"),
    ("2001:db8::1", "documentation"),
    ("100::1", "discard"),
])
def test_non_public_addresses_are_refused(address, reason):
    found = refusal(ipaddress.ip_address(address), NONE)
    assert found is not None and reason in found


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "100.63.255.255", "100.128.0.1",
                                     "172.15.255.255", "172.32.0.1", "2606:4700:4700::1111", "2a00:1450:4001::1",
                                     "::ffff:8.8.8.8", "2002:808:808::1"])
def test_public_addresses_are_allowed(address):
    assert refusal(ipaddress.ip_address(address), NONE) is None


def test_a_scoped_ipv6_address_is_refused():
    assert refusal(ipaddress.ip_address("fe80::1%eth0"), NONE) is not None


def test_the_allow_list_lets_its_networks_through_and_nothing_else():
    allowed = AllowedNetworks.parse("127.0.0.0/8, 10.1.0.0/16  ::1/128")
    assert len(allowed.networks) == 3 and str(allowed) == "127.0.0.0/8,10.1.0.0/16,::1/128"
    assert refusal(ipaddress.ip_address("127.0.0.1"), allowed) is None
    assert refusal(ipaddress.ip_address("127.9.9.9"), allowed) is None
    assert refusal(ipaddress.ip_address("::ffff:127.0.0.1"), allowed) is None  # the same address, mapped
    assert refusal(ipaddress.ip_address("::1"), allowed) is None
    assert refusal(ipaddress.ip_address("10.1.200.3"), allowed) is None
    assert refusal(ipaddress.ip_address("10.2.0.1"), allowed) is not None
    assert refusal(ipaddress.ip_address("169.254.169.254"), allowed) is not None
    assert refusal(ipaddress.ip_address("192.168.0.1"), allowed) is not None
    assert refusal(ipaddress.ip_address("8.8.8.8"), allowed) is None


def test_parse_accepts_empty_and_bare_addresses():
    assert not AllowedNetworks.parse("")
    assert not AllowedNetworks.parse(None)
    assert not AllowedNetworks.parse(" , ,")
    single = AllowedNetworks.parse("192.168.5.5")
    assert single.networks == (ipaddress.ip_network("192.168.5.5/32"),)
    assert ipaddress.ip_address("192.168.5.5") in single and ipaddress.ip_address("192.168.5.6") not in single
    assert AllowedNetworks.parse("10.1.2.3/8").networks == (ipaddress.ip_network("10.0.0.0/8"),)
    assert "10.0.0.1" not in AllowedNetworks.parse("10.0.0.0/8")  # a string is not an address


@pytest.mark.parametrize("bad", ["localhost", "10.0.0.0/33", "300.1.1.1/8", "127.0.0.0/8;rm"])
def test_parse_names_the_bad_item(bad):
    with pytest.raises(ValueError) as refused:
        AllowedNetworks.parse(f"10.0.0.0/8,{bad}")
    assert repr(bad) in str(refused.value)


@pytest.mark.parametrize(("url", "scheme", "host", "port", "path", "host_header"), [
    ("https://hooks.example.com/in", "https", "hooks.example.com", 443, "/in", "hooks.example.com"),
    ("https://Hooks.Example.COM.:8443/a/b?x=1&y=2", "https", "hooks.example.com", 8443, "/a/b?x=1&y=2",
     "hooks.example.com:8443"),
    ("http://127.0.0.1:8080", "http", "127.0.0.1", 8080, "/", "127.0.0.1:8080"),
    ("http://[::1]:9000/h", "http", "::1", 9000, "/h", "[::1]:9000"),
    ("HTTPS://bücher.example/x", "https", "xn--bcher-kva.example", 443, "/x", "xn--bcher-kva.example"),
])
def test_parse_target(url, scheme, host, port, path, host_header):
    target = parse_target(url)
    assert (target.scheme, target.host, target.port, target.path, target.host_header) == (
        scheme, host, port, path, host_header)


@pytest.mark.parametrize(("url", "problem"), [
    ("", "empty"),
    ("ftp://example.com/", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("gopher://example.com/", "scheme"),
    ("example.com/hook", "scheme"),
    ("https://user:s3cr3tpw@example.com/", "user name or password"),
    ("https://tok3n@example.com/", "user name or password"),
    ("https://example.com@evil.example/", "user name or password"),
    ("https:///path", "no host"),
    ("https://:443/path", "no host"),
    ("https://example.com:0/", "port"),
    ("https://example.com:65536/", "port"),
    ("https://example.com:http/", "port"),
    ("https://example.com/a b", "spaces or control"),
    ("https://example.com/\r\nHost: evil", "spaces or control"),
    ("https://example.com/#frag", "fragment"),
    ("https://exa_mple..com/", "domain name"),
    ("https://-bad-.com:99999/", "port"),
    ("https://" + "a" * 64 + ".com/", "domain name"),
    ("https://example.com/" + "a" * 3000, "longer"),
])
def test_bad_urls_are_refused_naming_the_problem(url, problem):
    with pytest.raises(ValueError) as refused:
        check_url(url, production=False)
    assert problem in str(refused.value)
    assert "s3cr3tpw" not in str(refused.value) and "tok3n" not in str(refused.value)


def test_https_is_required_in_production_only():
    check_url("http://hooks.example.com/in", production=False)
    check_url("https://hooks.example.com/in", production=True)
    with pytest.raises(ValueError) as refused:
        check_url("http://hooks.example.com/in", production=True)
    assert "https" in str(refused.value)


@pytest.mark.parametrize("bad", [None, 42, ["https://example.com/"]])
def test_a_url_that_is_not_a_string_is_refused(bad):
    with pytest.raises(ValueError):
        check_url(bad, production=False)
