"""What the restore drill compares, and how: snapshots of tables and of the audit log's signed root.

A snapshot holds every row of a table, full content (read models and event stores hold ciphertext and
personal data: nothing here ever prints a value, only table and column names, counts and hashes).
Comparing two snapshots names each table that differs and, for the first differing row, the columns.
Pure functions on plain data, so the comparison itself is unit-tested (tests/test_restore_drill.py).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TableSnapshot:
    """Every row of one table, sorted (so that two equal tables give equal snapshots whatever the
    physical order); ``key`` names the primary key's columns (empty: none), to pair changed rows."""

    columns: tuple[str, ...]
    rows: tuple[tuple, ...]
    key: tuple[str, ...] = ()

    @classmethod
    def of(cls, columns: Sequence[str], rows: Iterable[Sequence[Any]], key: Sequence[str] = ()) -> TableSnapshot:
        normal = (tuple(_plain(value) for value in row) for row in rows)
        return cls(tuple(columns), tuple(sorted(normal, key=repr)), tuple(key))

    def digest(self) -> str:
        """A short SHA-256 of the whole content (printable: it reveals nothing of the values)."""
        return hashlib.sha256(repr((self.columns, self.rows)).encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    """A value as a comparable, hashable Python value (psycopg2 gives ``memoryview`` for bytea and
    dicts/lists for json)."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, dict):
        return tuple(sorted((k, _plain(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    return value


@dataclass(frozen=True)
class TableComparison:
    database: str
    table: str
    rows_before: int
    rows_after: int
    difference: str | None = None  # None: identical

    @property
    def equal(self) -> bool:
        return self.difference is None

    def line(self) -> str:
        verdict = "equal" if self.equal else f"DIFFERENT: {self.difference}"
        return f"  {self.database:<14} {self.table:<34} {self.rows_before:>6} {self.rows_after:>6}  {verdict}"


def compare_table(database: str, table: str, before: TableSnapshot | None,
                  after: TableSnapshot | None) -> TableComparison:
    """One table before and after: equal, or what differs (names only, never a value)."""
    if before is None or after is None:
        missing = "before" if before is None else "after"
        count = len((after or before).rows)
        return TableComparison(database, table, 0 if before is None else count, 0 if after is None else count,
                               f"the table is missing {missing} the restore")
    rows_before, rows_after = len(before.rows), len(after.rows)
    if before.columns != after.columns:
        gone = [c for c in before.columns if c not in after.columns]
        new = [c for c in after.columns if c not in before.columns]
        return TableComparison(database, table, rows_before, rows_after,
                               f"columns differ (missing: {gone or '-'}, new: {new or '-'}, or their order)")
    if before.rows == after.rows:
        return TableComparison(database, table, rows_before, rows_after)
    return TableComparison(database, table, rows_before, rows_after, describe_row_difference(before, after))


def describe_row_difference(before: TableSnapshot, after: TableSnapshot) -> str:
    """Which rows differ, and in which columns: rows paired by primary key when the table has one."""
    only_before = list((Counter(before.rows) - Counter(after.rows)).elements())
    only_after = list((Counter(after.rows) - Counter(before.rows)).elements())
    parts = []
    if before.key:
        index = [before.columns.index(c) for c in before.key]
        old = {tuple(row[i] for i in index): row for row in only_before}
        new = {tuple(row[i] for i in index): row for row in only_after}
        changed = sorted(set(old) & set(new), key=repr)
        if changed:
            columns = changed_columns(before.columns, old[changed[0]], new[changed[0]])
            parts.append(f"{len(changed)} row(s) changed, the first in column(s) {', '.join(columns)}")
        gone, added = len(set(old) - set(new)), len(set(new) - set(old))
    else:
        paired = min(len(only_before), len(only_after))
        if paired:
            columns = changed_columns(before.columns, only_before[0], only_after[0])
            parts.append(f"{paired} row(s) differ, the first in column(s) {', '.join(columns)}")
        gone, added = len(only_before) - paired, len(only_after) - paired
    if gone:
        parts.append(f"{gone} row(s) missing after")
    if added:
        parts.append(f"{added} row(s) not there before")
    return "; ".join(parts)


def changed_columns(columns: Sequence[str], old: Sequence[Any], new: Sequence[Any]) -> list[str]:
    return [name for name, a, b in zip(columns, old, new, strict=True) if a != b] or ["(none: a duplicate row)"]


Snapshot = Mapping[str, Mapping[str, TableSnapshot]]  # database label -> table -> snapshot


def compare_snapshots(before: Snapshot, after: Snapshot, tables: Mapping[str, Iterable[str]] | None = None,
                      ) -> list[TableComparison]:
    """Every table of every database (or only ``tables``: database -> table names), before and after."""
    results = []
    for database in sorted(set(before) | set(after)):
        old, new = before.get(database, {}), after.get(database, {})
        names = sorted(tables[database]) if tables is not None else sorted(set(old) | set(new))
        for table in names:
            results.append(compare_table(database, table, old.get(table), new.get(table)))
    return results


# -- the audit log's signed root ---------------------------------------------------------------------


@dataclass(frozen=True)
class SignedRoot:
    """The latest signed checkpoint of the audit log, and what the restored tree gives."""

    tree_size: int
    root_hash: bytes
    signed_at: str
    key_id: str
    signature: bytes
    records: int  # rows of audit_records
    recomputed_root: bytes | None = None  # the root of the first tree_size leaf hashes the tree store holds
    signature_ok: bool | None = None  # verified with the public key
    problems: tuple[str, ...] = field(default=())


def compare_roots(before: SignedRoot, after: SignedRoot) -> list[str]:
    """What is wrong with the restored signed root (empty: identical and verified)."""
    problems = list(after.problems)
    for name in ("tree_size", "root_hash", "signed_at", "key_id", "signature", "records"):
        if getattr(before, name) != getattr(after, name):
            problems.append(f"audit log: {name} differs after the restore")
    if after.signature_ok is not True:
        problems.append("audit log: the restored checkpoint's signature does not verify with the public key")
    if after.recomputed_root != after.root_hash:
        problems.append("audit log: the restored tree's leaf hashes do not give the signed root")
    return problems


def summary_counts(results: Sequence[TableComparison]) -> tuple[int, int, int]:
    """(tables compared, rows compared before, tables that differ)."""
    return len(results), sum(r.rows_before for r in results), sum(not r.equal for r in results)
