"""Full-text search without the text: words normalised, then keyed hashes (R3.1).

The search index keeps, for each message, the HMAC of each distinct normalised word of its body and
nothing else, so a copy of the database does not give the words back (a dictionary attack needs the
key, which lives outside the database). A query is normalised and hashed the same way, and a message
matches when every hash of the query is among its own.

Normalisation makes the match case- and accent-insensitive, as a Portuguese speaker types: "não",
"Nao" and "NÃO" are one word, "AÇÃO" is "acao". Steps: casefold, NFKD (compatibility decomposition:
"ﬁ" is "fi", "²" is "2"), drop the combining marks the decomposition split off, casefold again (NFKD
can produce capitals: "ℌ" → "H"), split on everything that is not a letter or a digit (any script;
"_" splits too), drop empty pieces, keep the first occurrence of each word. Bounded: a word longer than
:data:`MAX_WORD_LENGTH` characters is cut there (a query cut the same way still finds it), and at most
:data:`MAX_WORDS` distinct words are kept per text, so one pasted log cannot write thousands of rows.

Pure: no I/O, no key handling (the adapter loads the key).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

MAX_WORD_LENGTH = 64
MAX_WORDS = 1000
MAX_QUERY_WORDS = 10  # distinct words of one search, at most (the caller refuses more: 422 on ``q``)
TERM_LENGTH = 32  # hex characters kept of the HMAC-SHA256: 128 bits, collisions negligible

_NOT_WORD = re.compile(r"[\W_]+")


def normalise_words(text: str, *, max_words: int = MAX_WORDS) -> list[str]:
    """The distinct normalised words of ``text``, in order of first appearance (see the module doc)."""
    if not text:
        return []
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    words: dict[str, None] = {}
    for piece in _NOT_WORD.split(stripped):
        if not piece:
            continue
        word = piece[:MAX_WORD_LENGTH]
        if word not in words:
            words[word] = None
            if len(words) >= max_words:
                break
    return list(words)


class TermHasher:
    """HMAC-SHA256 of normalised words under the search key, hex, cut to :data:`TERM_LENGTH` characters.

    Another key gives other terms: the index of one installation says nothing about another's, and
    rotating the key means rebuilding the index (``python -m upgestao_messaging reindex``).
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the search key must be at least 16 bytes")
        self._key = bytes(key)

    def __repr__(self) -> str:  # never the key
        return "TermHasher(<key>)"

    def hash(self, word: str) -> str:
        """The term of one already normalised word."""
        return hmac.new(self._key, word.encode("utf-8"), hashlib.sha256).hexdigest()[:TERM_LENGTH]

    def hashes(self, text: str, *, max_words: int = MAX_WORDS) -> list[str]:
        """The terms of ``text``'s distinct normalised words, in order of first appearance."""
        return [self.hash(word) for word in normalise_words(text, max_words=max_words)]
