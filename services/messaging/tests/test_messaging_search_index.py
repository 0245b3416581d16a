"""The search index's semantics, the same cases on the memory index and on the SQL one over SQLite and
PostgreSQL (created by the migrations): every word required, newest first, paging by position, visibility
and one container, removal, a subject's purge; the plan that looks container by container (a page the newest
entries do not fill) gives the same answers; nothing but hashes and ids at rest."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from upgestao_kernel.db import create_engine
from upgestao_kernel.migrations import upgrade
from upgestao_messaging.adapters import search_index
from upgestao_messaging.adapters.search_index import MemorySearchIndex, SqlSearchIndex, search_terms
from upgestao_messaging.adapters.tables import chats, conversations
from upgestao_messaging.domain.search import MAX_QUERY_WORDS, TermHasher

HASHER = TermHasher(b"\x05" * 32)
C1, C2, CHAT = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
CUSTOMER_A, CUSTOMER_B, AUTHOR = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
# (position, kind, container, subject, body)
MESSAGES = [
    (10, "conversation", C1, CUSTOMER_A, "Olá, não recebi o pedido"),
    (20, "conversation", C1, CUSTOMER_A, "O pedido 123 foi enviado ontem"),
    (30, "conversation", C2, CUSTOMER_B, "Não consigo acessar minha conta. Ação urgente!"),
    (40, "chat", CHAT, AUTHOR, "alguém viu o pedido da cliente? NAO achei"),
    (50, "conversation", C2, CUSTOMER_B, "pedido cancelado, nao recebi o reembolso"),
]


def mid(position: int) -> str:
    return str(uuid.UUID(int=position))


class Harness:
    """One index, its kind's visibility (a set of (kind, id) or None for all), and a way to read it raw."""

    def __init__(self, kind: str, index, engine=None, conn=None) -> None:
        self.kind, self.index, self.engine, self.conn = kind, index, engine, conn

    def visible(self, allowed: set[tuple[str, str]] | None):
        if self.kind == "memory":
            return lambda kind, cid: allowed is None or (kind, cid) in allowed
        if allowed is None:
            return lambda kind, cid: sa.true()
        pairs = sorted(allowed)
        return lambda kind, cid: sa.or_(sa.false(), *(sa.and_(kind == k, cid == i) for k, i in pairs))

    def find(self, q: str, allowed=None, **kw) -> list[int]:
        kw.setdefault("limit", 50)
        return [p for p, _ in self.index.find(HASHER.hashes(q), visible=self.visible(allowed), **kw)]


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def harness(request, tmp_path):
    if request.param == "memory":
        index = MemorySearchIndex()
        yield Harness("memory", index)
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'messaging.sqlite3'}"
    else:
        url = request.getfixturevalue("database_factory")("messaging")
    upgrade("upgestao_messaging:migrations", url)
    engine = create_engine(url)
    with engine.begin() as conn:
        yield Harness(request.param, SqlSearchIndex(conn), engine, conn)
    engine.dispose()


def register(h: Harness, *container_ids: str, kind: str = "conversation") -> None:
    """The read model's rows of the containers (where the index looks container by container)."""
    if h.kind == "memory":
        return
    now = datetime.now(UTC)
    for cid in container_ids:
        if kind == "conversation":
            h.conn.execute(conversations.insert().values(
                id=cid, customer_id=CUSTOMER_A, channel="web", status="open", priority="medium", labels=[],
                erased=False, created_at=now, updated_at=now, last_activity_at=now))
        else:
            h.conn.execute(chats.insert().values(id=cid, kind="group", creator_id=AUTHOR, created_at=now,
                                                 updated_at=now))


def fill(h: Harness) -> None:
    register(h, C1, C2)
    register(h, CHAT, kind="chat")
    for position, kind, container, subject, body in MESSAGES:
        h.index.add(message_id=mid(position), position=position, container_kind=kind, container_id=container,
                    subject_id=subject, terms=HASHER.hashes(body))


def test_every_word_required_accent_and_case_blind_newest_first(harness) -> None:
    fill(harness)
    assert harness.find("pedido") == [50, 40, 20, 10]
    assert harness.find("NÃO") == harness.find("nao") == [50, 40, 30, 10]
    assert harness.find("não pedido") == [50, 40, 10]
    assert harness.find("acao URGENTE") == [30]
    assert harness.find("pedido reembolso recebi") == [50]
    # more words than EXISTS_MAX + 1: the other terms counted in one subquery, same answers
    assert harness.find("pedido cancelado nao recebi reembolso") == [50]
    assert harness.find("pedido cancelado nao recebi reembolso ontem") == []
    assert harness.find("o pedido nao recebi") == [50, 10]
    assert harness.find("pedido inexistente") == []
    assert harness.find("palavra") == []
    assert harness.find("") == [] and harness.find(" ,.; ") == []
    hits = harness.index.find(HASHER.hashes("pedido"), visible=harness.visible(None), limit=2)
    assert hits == [(50, mid(50)), (40, mid(40))]  # (position, message_id)


def test_paging_limit_visibility_and_one_container(harness) -> None:
    fill(harness)
    assert harness.find("pedido", limit=2) == [50, 40]
    assert harness.find("pedido", limit=2, before_position=40) == [20, 10]
    assert harness.find("pedido", limit=2, before_position=10) == []
    assert harness.find("pedido", limit=0) == []
    attendant = {("conversation", C1)}
    assert harness.find("pedido", attendant) == [20, 10]
    assert harness.find("nao", attendant) == [10]
    assert harness.find("pedido", set()) == []
    # a chat id named as a conversation is not the chat
    assert harness.find("pedido", {("conversation", CHAT)}) == []
    assert harness.find("pedido", {("chat", CHAT)}) == [40]
    assert harness.find("pedido", container=("conversation", C2)) == [50]
    assert harness.find("pedido", container=("conversation", C2), before_position=50) == []
    assert harness.find("pedido", attendant, container=("conversation", C2)) == []
    assert harness.find("pedido", container=("chat", C2)) == []


def test_remove_replace_and_purge_subject(harness) -> None:
    fill(harness)
    harness.index.remove(mid(20))
    assert harness.find("pedido") == [50, 40, 10]
    harness.index.replace(message_id=mid(10), position=10, container_kind="conversation", container_id=C1,
                          subject_id=CUSTOMER_A, terms=HASHER.hashes("mensagem editada"))
    assert harness.find("pedido") == [50, 40] and harness.find("editada") == [10]
    assert harness.index.purge_subject(CUSTOMER_B) == 2
    assert harness.index.purge_subject(CUSTOMER_B) == 0  # idempotent
    assert harness.find("pedido") == [40] and harness.find("nao") == [40]
    assert harness.find("editada") == [10]  # another customer's stay
    harness.index.remove(mid(999))  # unknown: nothing happens


def test_terms_must_be_hashes_and_kinds_known(harness) -> None:
    with pytest.raises(ValueError):
        harness.index.add(message_id=mid(1), position=1, container_kind="conversation", container_id=C1,
                          subject_id=CUSTOMER_A, terms=["pedido"])  # a clear word, by mistake
    with pytest.raises(ValueError):
        harness.index.add(message_id=mid(1), position=1, container_kind="email", container_id=C1,
                          subject_id=CUSTOMER_A, terms=HASHER.hashes("pedido"))
    harness.index.add(message_id=mid(1), position=1, container_kind="chat", container_id=CHAT, subject_id=AUTHOR,
                      terms=[])  # nothing to index: nothing stored
    assert harness.find("pedido") == []


def test_a_search_has_at_most_max_query_words(harness) -> None:
    fill(harness)
    words = " ".join(f"palavra{i}" for i in range(MAX_QUERY_WORDS))
    assert harness.find(words) == []
    with pytest.raises(ValueError):
        harness.find(words + " mais")
    assert harness.find("pedido " * 50) == [50, 40, 20, 10]  # the same word again is one word


def test_container_by_container_gives_the_same_answers(harness, monkeypatch) -> None:
    """Many messages with a common word in one conversation, few in another: with a window of 5 entries, a
    viewer of the small conversation only (one of ten) is answered container by container, newest first,
    paged."""
    for name, value in {"WINDOW": 5, "COUNT_CAP": 8, "COUNT_FLOOR": 2}.items():
        monkeypatch.setattr(search_index, name, value)
    big, small = str(uuid.uuid4()), str(uuid.uuid4())
    register(harness, big, small, *(str(uuid.uuid4()) for _ in range(8)))
    if harness.kind != "memory":  # the plan taken: by container (the window alone would say "go on below 56")
        by_container = []
        original = SqlSearchIndex._by_container
        monkeypatch.setattr(SqlSearchIndex, "_by_container",
                            lambda self, *a: by_container.append(a[1]) or original(self, *a))
    for position in range(1, 61):
        container = small if position % 20 == 0 else big
        body = "obrigado pelo retorno" + (" rápido" if position % 3 == 0 else "")
        harness.index.add(message_id=mid(position), position=position, container_kind="conversation",
                          container_id=container, subject_id=CUSTOMER_A, terms=HASHER.hashes(body))
    viewer = {("conversation", small)}
    assert harness.find("obrigado", viewer) == [60, 40, 20]
    if harness.kind != "memory":
        assert by_container == [[small]]
    assert harness.find("obrigado", viewer, limit=2) == [60, 40]
    assert harness.find("obrigado", viewer, limit=2, before_position=40) == [20]
    assert harness.find("obrigado rapido", viewer) == [60]
    assert harness.find("rapido obrigado retorno", viewer) == [60]
    everyone = harness.find("obrigado rápido")
    assert everyone == [p for p in range(60, 0, -1) if p % 3 == 0]
    assert harness.find("obrigado", None, limit=7, before_position=31) == list(range(30, 23, -1))
    assert harness.find("obrigado", set()) == []
    if harness.kind != "memory":  # more containers than CONTAINERS_MAX: the walk goes on, same answer
        monkeypatch.setattr(search_index, "CONTAINERS_MAX", 1)
        assert harness.find("obrigado", {("conversation", small), ("conversation", big)}, limit=100) == list(
            range(60, 0, -1))
        assert harness.find("obrigado", viewer) == [60, 40, 20]


@pytest.mark.parametrize("harness", ["sqlite", "postgresql"], indirect=True)
def test_the_work_of_one_call_is_bounded_and_resumable(harness, monkeypatch) -> None:
    """After ``MAX_EXAMINED`` entries of the driving term a call stops and says where to go on; going on
    from there finds the rest, and the call that reads the last entry says nothing is left."""
    for name, value in {"MAX_EXAMINED": 10, "WINDOW": 5, "CONTAINERS_MAX": 0, "COUNT_FLOOR": 2}.items():
        monkeypatch.setattr(search_index, name, value)
    register(harness, C1)
    for position in range(1, 41):
        body = "bom dia" + (" boleto" if position in (3, 33) else "") + (" vencido" if position % 2 else "")
        harness.index.add(message_id=mid(position), position=position, container_kind="conversation",
                          container_id=C1, subject_id=CUSTOMER_A, terms=HASHER.hashes(body))
    def find(q: str, allowed=None, before=None):
        hits = harness.index.find(HASHER.hashes(q), visible=harness.visible(allowed), limit=50,
                                  before_position=before)
        return [p for p, _ in hits], hits.resume_before

    odd = list(range(39, 0, -2))
    assert find("boleto vencido bom") == ([33, 3], None)  # "boleto" (2 entries) drives
    if harness.kind == "memory":  # no budget in memory: everything at once
        assert find("vencido bom") == (odd, None)
        return
    # "vencido" (20 entries) drives: ten looked at (39..21), ten hits, the page not full: go on below 20 (the
    # position just above the next entry, 19)
    assert find("vencido bom") == (odd[:10], 20)
    assert find("vencido bom", before=20) == (odd[10:], None)  # the last ten: nothing left after them
    # a viewer who sees C2 only, where nothing is indexed: one window, then no container to look in: done
    assert find("dia vencido", {("conversation", C2)}) == ([], None)


@pytest.mark.parametrize("harness", ["sqlite", "postgresql"], indirect=True)
def test_nothing_but_hashes_and_ids_at_rest(harness) -> None:
    fill(harness)
    dump = " ".join(str(value) for row in harness.conn.execute(sa.select(search_terms)) for value in row)
    for _, _, _, _, body in MESSAGES:
        for word in body.replace(",", " ").replace(".", " ").replace("!", " ").replace("?", " ").split():
            if len(word) > 3:
                assert word.lower() not in dump.lower(), word
    from upgestao_messaging.domain.search import normalise_words

    for word in normalise_words(" ".join(m[4] for m in MESSAGES)):
        if len(word) > 3:
            assert word not in dump


@pytest.mark.parametrize("harness", ["sqlite", "postgresql"], indirect=True)
def test_the_repositorys_own_visibility_admits_only_the_viewers_conversations(harness, monkeypatch) -> None:
    """The visibility the service gives the index (``SqlRepositories.search_visibility``, the one rule as SQL),
    on the container-by-container plan: an attendant's search finds their conversations' messages and never
    another attendant's. (Its EXISTS over ``conversations`` did not correlate inside a query FROM
    ``conversations``, and admitted every conversation once the viewer saw any: found at 100,000 messages.)"""
    from upgestao_messaging.adapters.sql_repositories import SqlRepositories
    from upgestao_messaging.domain.visibility import READ, Viewer, conversation_scope

    for name, value in {"WINDOW": 5, "COUNT_CAP": 8, "COUNT_FLOOR": 2}.items():
        monkeypatch.setattr(search_index, name, value)
    ana, bia = str(uuid.uuid4()), str(uuid.uuid4())
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    register(harness, mine, theirs)
    harness.conn.execute(conversations.update().where(conversations.c.id == mine).values(assignee_id=ana))
    harness.conn.execute(conversations.update().where(conversations.c.id == theirs).values(assignee_id=bia))
    for position in range(1, 61):  # the common word mostly in the other attendant's conversation
        container = mine if position % 20 == 0 else theirs
        harness.index.add(message_id=mid(position), position=position, container_kind="conversation",
                          container_id=container, subject_id=CUSTOMER_A, terms=HASHER.hashes("boleto vencido"))
    scope = conversation_scope(Viewer(user_id=ana, permissions=frozenset({READ}), team_ids=frozenset()))
    visible = SqlRepositories.search_visibility(ana, scope, chats=True)
    found = [p for p, _ in harness.index.find(HASHER.hashes("boleto"), visible=visible, limit=50)]
    assert found == [60, 40, 20]
    # the same rule is the same object, its clause over the same columns built once; asked again, the same answer
    again = SqlRepositories.search_visibility(ana, conversation_scope(
        Viewer(user_id=ana, permissions=frozenset({READ}), team_ids=frozenset())), chats=True)
    columns = (search_index._alias(0).c.container_kind, search_index._alias(0).c.container_id)
    assert again is visible and again(*columns) is visible(*columns)
    assert visible(sa.literal("conversation"), conversations.c.id) is not visible(*columns)
    assert [p for p, _ in harness.index.find(HASHER.hashes("boleto"), visible=again, limit=50)] == [60, 40, 20]
    # another viewer's rule, or this one's of another scope, is its own
    theirs_rule = SqlRepositories.search_visibility(bia, conversation_scope(
        Viewer(user_id=bia, permissions=frozenset({READ}), team_ids=frozenset())), chats=True)
    assert theirs_rule is not visible
    theirs_found = [p for p, _ in harness.index.find(HASHER.hashes("boleto"), visible=theirs_rule, limit=50)]
    assert theirs_found[:5] == [59, 58, 57, 56, 55] and all(p % 20 for p in theirs_found)  # none of hers
    assert SqlRepositories.search_visibility(ana, scope, chats=False) is not visible


@pytest.mark.parametrize("harness", ["sqlite", "postgresql"], indirect=True)
def test_a_viewer_who_sees_most_containers_walks_on(harness, monkeypatch) -> None:
    """A viewer who sees more than one container in ``BY_CONTAINER_SHARE`` is not answered container by
    container (most entries are theirs: the walk is cheaper); the rest of the call's work is one more window."""
    for name, value in {"WINDOW": 5, "COUNT_CAP": 8, "COUNT_FLOOR": 2, "MAX_EXAMINED": 15}.items():
        monkeypatch.setattr(search_index, name, value)
    monkeypatch.setattr(SqlSearchIndex, "_by_container", lambda *a: pytest.fail("read container by container"))
    mine, other = str(uuid.uuid4()), str(uuid.uuid4())
    register(harness, mine, other)
    for position in range(1, 41):
        harness.index.add(message_id=mid(position), position=position, container_kind="conversation",
                          container_id=other if position % 10 == 0 else mine, subject_id=CUSTOMER_A,
                          terms=HASHER.hashes("nota" + (" fiscal" if position % 10 == 0 else "")))
    hits = harness.index.find(HASHER.hashes("nota"), visible=harness.visible({("conversation", other)}), limit=50)
    # 5 entries (40..36), then the other 10 of the call's 15 (35..26): 40 and 30; go on below 26
    assert [p for p, _ in hits] == [40, 30] and hits.resume_before == 26


@pytest.mark.parametrize("harness", ["sqlite", "postgresql"], indirect=True)
def test_the_signature_passes_over_entries_without_the_other_words(harness) -> None:
    """Each entry carries its message's signature; a search probes the other words only where it has their
    bits. An entry indexed before the signatures (-1, every bit) is found as before; a signature is a filter
    only (two words sharing a bit: the probe decides)."""
    fill(harness)
    stored = {row.position: row.signature for row in harness.conn.execute(
        sa.select(search_terms.c.position, search_terms.c.signature).distinct())}
    assert stored == {p: search_index.signature(HASHER.hashes(body)) for p, _, _, _, body in MESSAGES}
    assert all(0 < bits < 2 ** 63 for bits in stored.values())
    # what the filter decides is what the search answers: a signature without the bits finds nothing ...
    harness.conn.execute(search_terms.update().where(search_terms.c.position == 50).values(signature=0))
    assert harness.find("pedido reembolso") == [] and harness.find("pedido") == [50, 40, 20, 10]
    # ... one with every bit (a migrated entry) is probed
    harness.conn.execute(search_terms.update().where(search_terms.c.position == 50).values(signature=-1))
    assert harness.find("pedido reembolso") == [50] and harness.find("pedido ontem") == [20]
    # a word whose bit the message has without the word: probed, not a hit
    absent = next(word for word in (f"palavra{i}" for i in range(1000))
                  if search_index.signature([HASHER.hash(word)]) & stored[20])
    assert harness.find(f"pedido {absent}") == []


def test_signature_bits() -> None:
    terms = HASHER.hashes("um dois tres")
    bits = search_index.signature(terms)
    assert bits == search_index.signature(reversed(terms)) and 0 < bits < 2 ** search_index.SIGNATURE_BITS
    assert all(search_index.signature([t]) & bits for t in terms) and search_index.signature([]) == 0
    assert bin(search_index.signature(terms[:1])).count("1") == 1


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_migration_gives_entries_indexed_before_it_every_bit(kind, tmp_path, request) -> None:
    """0005 adds the signature without rewriting a row: an entry of before reads -1 and is found as before;
    downgrading drops the column (the table stays WITHOUT ROWID on SQLite)."""
    from upgestao_kernel.migrations import downgrade

    url = (f"sqlite:///{tmp_path / 'm.sqlite3'}" if kind == "sqlite"
           else request.getfixturevalue("database_factory")("messaging"))
    upgrade("upgestao_messaging:migrations", url, "0004")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO search_terms (term, position, message_id, container_kind, container_id, "
                                 "subject_id) VALUES (:term, 7, :mid, 'conversation', :c, :s)"),
                         [{"term": t, "mid": mid(7), "c": C1, "s": CUSTOMER_A} for t in HASHER.hashes("nota fiscal")])
        upgrade("upgestao_messaging:migrations", url)
        with engine.begin() as conn:
            assert {row.signature for row in conn.execute(sa.select(search_terms.c.signature))} == {-1}
            hits = SqlSearchIndex(conn).find(HASHER.hashes("fiscal nota"), visible=lambda k, i: sa.true(), limit=5)
            assert [p for p, _ in hits] == [7]
        downgrade("upgestao_messaging:migrations", url, "0004")
        with engine.connect() as conn:
            assert "signature" not in {c["name"] for c in sa.inspect(conn).get_columns("search_terms")}
            if kind == "sqlite":
                sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'search_terms'").scalar_one()
                assert "WITHOUT ROWID" in sql.upper()
    finally:
        engine.dispose()


def test_no_parallel_workers_after_the_first_window_on_postgresql(database_factory, monkeypatch) -> None:
    """A search whose first window does not fill the page sets ``max_parallel_workers_per_gather`` to 0 for the
    rest of its transaction (the statements that follow read thousands of entries: PostgreSQL would start
    workers); one answered by its first window leaves the setting alone."""
    url = database_factory("messaging")
    upgrade("upgestao_messaging:migrations", url)
    engine = create_engine(url)
    monkeypatch.setattr(search_index, "WINDOW", 5)
    try:
        with engine.begin() as conn:
            h = Harness("postgresql", SqlSearchIndex(conn), engine, conn)
            register(h, C1)
            for position in range(1, 21):
                h.index.add(message_id=mid(position), position=position, container_kind="conversation",
                            container_id=C1, subject_id=CUSTOMER_A, terms=HASHER.hashes("nota fiscal"))
        workers = "SHOW max_parallel_workers_per_gather"
        with engine.begin() as conn:
            default = conn.exec_driver_sql(workers).scalar_one()
            assert default != "0"
            h = Harness("postgresql", SqlSearchIndex(conn), engine, conn)
            assert h.find("nota", limit=3) == [20, 19, 18]  # the first window is enough
            assert conn.exec_driver_sql(workers).scalar_one() == default
            assert h.find("nota fiscal", limit=8, container=("conversation", C1)) == list(range(20, 12, -1))
            assert conn.exec_driver_sql(workers).scalar_one() == "0"  # two windows, in one conversation
        with engine.begin() as conn:
            h = Harness("postgresql", SqlSearchIndex(conn), engine, conn)
            assert h.find("nota fiscal", limit=8) == list(range(20, 12, -1))  # two windows
            assert conn.exec_driver_sql(workers).scalar_one() == "0"
        with engine.begin() as conn:  # SET LOCAL: the transaction's only
            assert conn.exec_driver_sql(workers).scalar_one() == default
    finally:
        engine.dispose()
