"""``make up``'s local SMTP sink (issue 12): started before the services unless SMTP_URL is given (never in
production), on 1025 for make up and on a free port for a platform started from code, a taken port refused
plainly; the notifier gets its SMTP_URL and the sink's directory; stopped last. No broker, no database: the
sink alone is started (``start_mail_sink``), as ``Platform.start`` does before the services."""

from __future__ import annotations

import smtplib
import socket
import stat

import pytest


def platform_on(platform_module, tmp_path, **kw):
    env = kw.pop("env", {})
    return platform_module.Platform(data_dir=tmp_path, http_address=platform_module.free_address(),
                                    env={"UPGESTAO_ENV": "test", **env}, **kw)


@pytest.fixture(autouse=True)
def no_inherited_smtp(monkeypatch):
    monkeypatch.delenv("SMTP_URL", raising=False)
    monkeypatch.delenv("UPGESTAO_SMTP_SINK_PORT", raising=False)


def test_a_platform_from_code_gets_a_sink_on_a_free_port_and_the_notifier_its_url(platform_module, tmp_path):
    first, second = platform_on(platform_module, tmp_path / "a"), platform_on(platform_module, tmp_path / "b")
    for platform in (first, second):
        platform.plan_mail_sink()
    assert first.sink_address != second.sink_address  # two platforms in one test session never collide
    host, port = platform_module.split_address(first.sink_address)
    assert host == "127.0.0.1" and port != 1025
    assert first.mail_env == {"SMTP_URL": f"smtp://127.0.0.1:{port}",
                              "NOTIFIER_ACCEPTED_LOOKUP_DIR": str(tmp_path.resolve() / "a" / "mail")}
    env = first.environment("notifier")
    assert env["SMTP_URL"] == f"smtp://127.0.0.1:{port}"
    assert "AMQP_URI" not in first.environment(platform_module.MAIL_SINK)  # the sink holds no broker credentials


def test_smtp_url_given_or_production_or_no_notifier_means_no_sink(platform_module, tmp_path, monkeypatch):
    given = platform_on(platform_module, tmp_path / "a", env={"SMTP_URL": "smtp+starttls://u:p@mail.example:587"})
    production = platform_on(platform_module, tmp_path / "b", env={"UPGESTAO_ENV": "production"})
    without = platform_on(platform_module, tmp_path / "c", services=["identity"])
    for platform in (given, production, without):
        platform.plan_mail_sink()
        assert platform.sink_address is None and platform.mail_env == {}
    assert given.environment("notifier")["SMTP_URL"] == "smtp+starttls://u:p@mail.example:587"
    monkeypatch.setenv("SMTP_URL", "smtp://127.0.0.1:2525")
    from_environment = platform_on(platform_module, tmp_path / "d")
    from_environment.plan_mail_sink()
    assert from_environment.sink_address is None


def test_the_port_chosen_is_used_and_a_taken_one_is_refused_saying_how_to_choose(platform_module, tmp_path,
                                                                                   monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        platform = platform_on(platform_module, tmp_path, smtp_sink_port=port)
        with pytest.raises(platform_module.PlatformError) as err:
            platform.plan_mail_sink()
        assert f"127.0.0.1:{port} is already in use" in str(err.value)
        assert "UPGESTAO_SMTP_SINK_PORT" in str(err.value) and "SMTP_URL" in str(err.value)
    monkeypatch.setenv("UPGESTAO_SMTP_SINK_PORT", str(port))
    chosen = platform_on(platform_module, tmp_path)
    chosen.plan_mail_sink()
    assert chosen.sink_address == f"127.0.0.1:{port}"
    monkeypatch.setenv("UPGESTAO_SMTP_SINK_PORT", "smtp")
    with pytest.raises(platform_module.PlatformError, match="UPGESTAO_SMTP_SINK_PORT"):
        platform_on(platform_module, tmp_path).plan_mail_sink()


def test_the_sink_is_started_supervised_takes_mail_into_the_data_dir_and_stops_last(platform_module, tmp_path):
    said = []
    platform = platform_on(platform_module, tmp_path, echo=said.append)
    platform.plan_mail_sink()
    platform.log_dir.mkdir(parents=True, exist_ok=True)
    try:
        platform.start_mail_sink()
        assert set(platform.children) == {platform_module.MAIL_SINK}
        host, port = platform_module.split_address(platform.sink_address)
        with smtplib.SMTP(host, port, timeout=5) as smtp:
            smtp.sendmail("no-reply@upgestao.test", ["someone@example.com"],
                          b"Message-ID: <1@upgestao.test>\r\nSubject: hi\r\n\r\nbody\r\n")
        [kept] = list(platform.mail_dir.glob("*.eml"))
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        assert any(str(platform.mail_dir) in line for line in said)
    finally:
        codes = platform.stop(timeout=10)
    assert codes == {platform_module.MAIL_SINK: 0}
    assert "someone@example.com" not in platform.log_path(platform_module.MAIL_SINK).read_text()
