"""Password policy (R1.2)."""

from importlib import resources

import pytest
from upgestao_identity.domain.passwords import (
    MAX_BYTES,
    MIN_LENGTH,
    PasswordRejected,
    check_password,
    common_passwords,
)

GOOD = "Tr4vessa-do-Ouvidor"


def test_constants():
    assert MIN_LENGTH == 10
    assert MAX_BYTES == 72


def test_a_good_password_passes():
    assert check_password(GOOD, email="maria.silva@example.com") is None
    assert check_password(GOOD, email=None) is None


def test_length_boundary_in_characters():
    check_password("kQ7#vLm2pX", email=None)  # exactly 10
    with pytest.raises(PasswordRejected, match="at least 10 characters"):
        check_password("kQ7#vLm2p", email=None)  # 9


def test_length_counts_characters_not_bytes():
    check_password("ção" + "ñ" * 6 + "z", email=None)  # 10 characters, 19 bytes


def test_byte_boundary_ascii():
    check_password("a" * 36 + "Zq9" * 12, email=None)  # 72 bytes
    with pytest.raises(PasswordRejected, match="72 bytes") as excinfo:
        check_password("a" * 37 + "Zq9" * 12, email=None)  # 73 bytes
    assert isinstance(excinfo.value, ValueError)
    assert excinfo.value.message == str(excinfo.value)


def test_byte_boundary_multibyte():
    ok = "ç" * 36  # 36 characters, 72 bytes
    assert len(ok.encode("utf-8")) == 72
    check_password(ok, email=None)
    with pytest.raises(PasswordRejected, match="too long"):
        check_password(ok + "a", email=None)  # 37 characters, 73 bytes
    emoji = "\U0001f510" * 18  # 4 bytes each: 72 bytes but only 18 characters
    check_password(emoji, email=None)
    with pytest.raises(PasswordRejected, match="too long"):
        check_password(emoji + "!", email=None)
    with pytest.raises(PasswordRejected, match="too long"):
        check_password("a" * 71 + "é", email=None)  # 72 characters, 73 bytes


def test_not_a_string():
    for value in (None, 1234567890, b"abcdefghijkl"):
        with pytest.raises(PasswordRejected):
            check_password(value, email=None)


def test_common_list_loaded_once_and_large():
    passwords = common_passwords()
    assert isinstance(passwords, frozenset)
    assert len(passwords) >= 10_000
    assert common_passwords() is passwords
    assert "1234567890" in passwords
    assert "senha12345" in passwords
    assert not any(p.startswith("#") for p in passwords)


def test_common_list_is_package_data():
    text = resources.files("upgestao_identity.domain").joinpath("common_passwords.txt").read_text("utf-8")
    assert text.startswith('# source: zxcvbn 4.5.0 frequency list "passwords"')


@pytest.mark.parametrize("password", ["1234567890", "QWERTYUIOP", "Password123", "SENHA12345", "  senha12345  "])
def test_common_password_refused_case_insensitively(password):
    with pytest.raises(PasswordRejected, match="too common"):
        check_password(password, email=None)


def test_common_password_compared_after_nfkc():
    fullwidth = "ｐａｓｓｗｏｒｄ１２３"  # NFKC -> password123
    with pytest.raises(PasswordRejected, match="too common"):
        check_password(fullwidth, email=None)


def test_common_match_is_exact():
    check_password("1234567890x!", email=None)


LOCAL_PART_MESSAGE = "the password must not contain the part of your e-mail address before the @"


def test_email_local_part_refused_case_insensitively():
    with pytest.raises(PasswordRejected) as excinfo:
        check_password("xx-Maria.Silva-2024", email="maria.silva@example.com")
    assert str(excinfo.value) == LOCAL_PART_MESSAGE  # says what is looked for: not the whole address


def test_the_domain_of_the_email_is_not_looked_for():
    check_password("example.com-Tr4vessa", email="maria.silva@example.com")


def test_short_local_part_is_not_looked_for():
    check_password("joao-bo-Tr4vessa", email="bo@example.com")  # 2 chars: ignored
    with pytest.raises(PasswordRejected, match="before the @"):
        check_password("joao-bob-Tr4vessa", email="BOB@example.com")  # 3 chars: checked
