"""Search without the text: normalisation (accents, case, punctuation, Portuguese), keyed term hashes, the
search key's loading. The index itself (memory, SQLite, PostgreSQL) is in ``tests/test_messaging_search_index``."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest
from upgestao_kernel.config import ConfigError, load_settings
from upgestao_messaging.adapters.search_index import SEARCH_KEY_FILE, SEARCH_KEY_VAR, load_search_key
from upgestao_messaging.domain.search import MAX_WORD_LENGTH, MAX_WORDS, TERM_LENGTH, TermHasher, normalise_words

KEY = b"\x01" * 32


@pytest.mark.parametrize(("text", "words"), [
    ("Não", ["nao"]),
    ("NÃO não nao NaO", ["nao"]),
    ("AÇÃO", ["acao"]),
    ("Informações sobre a devolução", ["informacoes", "sobre", "a", "devolucao"]),
    ("Olá, João! Tudo bem? Você pôde ver o pedido nº 123?", ["ola", "joao", "tudo", "bem", "voce", "pode", "ver",
                                                            "o", "pedido", "no", "123"]),
    ("e-mail: ana.souza@example.com.br", ["e", "mail", "ana", "souza", "example", "com", "br"]),
    ("R$ 1.250,90 até 15/03", ["r", "1", "250", "90", "ate", "15", "03"]),
    ("snake_case_word", ["snake", "case", "word"]),
    ("ﬁm Straße", ["fim", "strasse"]),  # compatibility decomposition, casefold
    ("ÁÉÍÓÚ àèìòù âêô ãõ ç ü", ["aeiou", "aeo", "ao", "c", "u"]),  # the second "aeiou" is the first again
    ("   \t\n,.;!?  ", []),
    ("", []),
    ("Привет мир 你好", ["привет", "мир", "你好"]),  # letters of any script are words
])
def test_normalise_words(text: str, words: list[str]) -> None:
    assert normalise_words(text) == words


def test_normalise_bounds_length_and_count() -> None:
    long = "a" * (MAX_WORD_LENGTH + 50)
    assert normalise_words(long) == ["a" * MAX_WORD_LENGTH]
    # a query holding the long word finds it: both sides are cut the same way
    assert normalise_words(long + "b") == normalise_words(long)
    many = " ".join(f"w{i}" for i in range(MAX_WORDS + 500))
    words = normalise_words(many)
    assert len(words) == MAX_WORDS and words[0] == "w0" and words[-1] == f"w{MAX_WORDS - 1}"
    assert normalise_words("a b c d", max_words=2) == ["a", "b"]


def test_hashes_are_keyed_fixed_length_and_accent_blind() -> None:
    hasher = TermHasher(KEY)
    other = TermHasher(b"\x02" * 32)
    assert hasher.hashes("Não sei") == hasher.hashes("nao SEI") == [hasher.hash("nao"), hasher.hash("sei")]
    assert all(len(h) == TERM_LENGTH and int(h, 16) >= 0 for h in hasher.hashes("não sei"))
    assert hasher.hash("nao") != other.hash("nao")  # another key: other terms
    assert hasher.hash("nao") != hasher.hash("não")  # hash() takes normalised words; hashes() normalises
    assert "nao" not in hasher.hash("nao") and "<key>" in repr(hasher) and repr(KEY) not in repr(hasher)
    with pytest.raises(ValueError):
        TermHasher(b"short")


def test_search_key_from_the_environment_or_a_local_file(tmp_path) -> None:
    dev = load_settings("messaging", {"UPGESTAO_DATA_DIR": str(tmp_path)})
    given = base64.b64encode(b"\x07" * 32).decode()
    assert load_search_key(dev, {SEARCH_KEY_VAR: given}) == b"\x07" * 32
    generated = load_search_key(dev, {})
    assert len(generated) == 32 and (tmp_path / "keys" / SEARCH_KEY_FILE).exists()
    assert load_search_key(dev, {}) == generated  # the same file on the next start
    with pytest.raises(ConfigError) as bad:
        load_search_key(dev, {SEARCH_KEY_VAR: "not base64!"})
    assert bad.value.variable == SEARCH_KEY_VAR
    prod = replace(dev, env="production")
    with pytest.raises(ConfigError) as missing:
        load_search_key(prod, {})
    assert missing.value.variable == SEARCH_KEY_VAR



def test_records_of_rows_by_position_when_the_columns_are_the_fields_else_by_name() -> None:
    from dataclasses import fields

    from upgestao_messaging.adapters.ports import ReadCursor

    names = [f.name for f in fields(ReadCursor)]
    row = ("u", "conversation", "c", "m", 7, "now")
    assert ReadCursor.all_of(names, [row]) == [ReadCursor(*row)]
    shuffled = names[::-1]
    assert ReadCursor.all_of(shuffled, [row[::-1], row[::-1]]) == [ReadCursor(*row)] * 2
    assert ReadCursor.all_of(names, []) == []
