"""The restore drill's PostgreSQL side: per-service databases and roles of its own, snapshots of every
table (and of owners, grants, triggers and sequences), ``pg_dump`` / ``pg_restore``, the audit log's
signed root as the database holds it.

Every service gets a database owned by a login role of its own (as CloudNativePG provisions them:
one database and owner per service); privacy also gets its runtime role, which may only append to the
audit log (``upgestao_privacy.adapters.database_roles``). The drill connects as the server's
administrator (``RESTORE_DRILL_PG_URL``, default ``postgresql+psycopg2://postgres@127.0.0.1:5432/postgres``)
to create and drop them, to dump and to restore.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from restore_drill_compare import SignedRoot, TableSnapshot

META_TABLES = ("(database owner)", "(owners and grants)", "(triggers)", "(sequences)")


@dataclass(frozen=True)
class ServiceDatabase:
    service: str
    name: str  # the database
    owner: str  # its owner role (the migrations', and the service's unless it has a runtime role)
    owner_url: str
    runtime: str | None = None  # privacy: the runtime role
    runtime_url: str | None = None


class DrillDatabases:
    """The drill's databases and roles on one server, created by :meth:`create`, removed by :meth:`remove`."""

    def __init__(self, admin_url: str, tag: str, services: Iterable[str], runtime_services: Iterable[str]) -> None:
        self.admin_url = sa.make_url(admin_url)
        self.tag = tag
        self.services = tuple(services)
        self.runtime_services = set(runtime_services)
        self.databases: dict[str, ServiceDatabase] = {}
        self.roles_created: list[str] = []
        self.databases_created: list[str] = []

    # -- connections -----------------------------------------------------------------------------------

    def url(self, database: str, role: str | None = None, password: str | None = None) -> str:
        url = self.admin_url.set(database=database)
        if role is not None:
            url = url.set(username=role, password=password)
        return url.render_as_string(hide_password=False)

    def engine(self, database: str | None = None, autocommit: bool = False) -> sa.Engine:
        options = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
        return sa.create_engine(self.url(database or self.admin_url.database or "postgres"), **options)

    def _admin(self, *statements: str) -> None:
        engine = self.engine(autocommit=True)
        try:
            with engine.connect() as conn:
                for statement in statements:
                    conn.exec_driver_sql(statement)
        finally:
            engine.dispose()

    @staticmethod
    def _quote(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    # -- create and remove ---------------------------------------------------------------------------------

    def create(self) -> dict[str, ServiceDatabase]:
        """A role and a database per service (``drill_<tag>_<service>``), privacy's runtime role too."""
        for service in self.services:
            base = f"drill_{self.tag}_{service}"
            owner_password = secrets.token_urlsafe(18)
            self._create_role(base, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE", owner_password)
            self._admin(f"CREATE DATABASE {self._quote(base)} OWNER {self._quote(base)}")
            self.databases_created.append(base)
            runtime = runtime_url = None
            if service in self.runtime_services:
                runtime, runtime_password = f"{base}_runtime", secrets.token_urlsafe(18)
                self._create_role(runtime, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION "
                                           "NOBYPASSRLS", runtime_password)
                runtime_url = self.url(base, runtime, runtime_password)
            self.databases[service] = ServiceDatabase(service, base, base, self.url(base, base, owner_password),
                                                      runtime, runtime_url)
        return self.databases

    def _create_role(self, role: str, options: str, password: str) -> None:
        literal = "'" + password.replace("'", "''") + "'"
        self._admin(f"CREATE ROLE {self._quote(role)} WITH {options} PASSWORD {literal}")
        self.roles_created.append(role)

    def remove(self) -> list[str]:
        """Drop every database and role created (databases first: a role goes once nothing holds its grants);
        the problems met, if any (the drill reports them)."""
        problems = []
        for name in reversed(self.databases_created):
            try:
                self._admin(f"DROP DATABASE IF EXISTS {self._quote(name)} WITH (FORCE)")
            except sa.exc.SQLAlchemyError as exc:
                problems.append(f"DROP DATABASE {name}: {type(exc).__name__}")
        for role in reversed(self.roles_created):
            try:
                self._admin(f"DROP ROLE IF EXISTS {self._quote(role)}")
            except sa.exc.SQLAlchemyError as exc:
                problems.append(f"DROP ROLE {role}: {type(exc).__name__}")
        return problems

    # -- dump, drop, restore ---------------------------------------------------------------------------

    def _pg_args(self) -> list[str]:
        url = self.admin_url
        return ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres"]

    def _pg_env(self) -> dict[str, str]:
        import os

        env = dict(os.environ)
        if self.admin_url.password:
            env["PGPASSWORD"] = self.admin_url.password
        return env

    def dump(self, service: str, directory: Path) -> Path:
        """``pg_dump --format=custom`` of the service's database into ``directory``."""
        target = directory / f"{service}.dump"
        database = self.databases[service].name
        run(["pg_dump", *self._pg_args(), "--format=custom", "--file", str(target), database], self._pg_env())
        return target

    def drop_and_recreate(self, service: str) -> None:
        """DROP the service's database and create it again, empty, owned by the service's owner role."""
        db = self.databases[service]
        self._admin(f"DROP DATABASE {self._quote(db.name)} WITH (FORCE)",
                    f"CREATE DATABASE {self._quote(db.name)} OWNER {self._quote(db.owner)}")

    def restore(self, service: str, dump: Path) -> None:
        """``pg_restore`` into the empty database: owners and grants as dumped (the roles are the server's)."""
        run(["pg_restore", *self._pg_args(), "--exit-on-error", "--single-transaction", "--dbname",
             self.databases[service].name, str(dump)], self._pg_env())

    def table_count(self, service: str) -> int:
        engine = self.engine(self.databases[service].name)
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar()
        finally:
            engine.dispose()

    # -- snapshots ---------------------------------------------------------------------------------------

    def snapshot(self, service: str) -> dict[str, TableSnapshot]:
        """Every table of the service's database (rows sorted, full content), and its owners and grants,
        triggers and sequences as pseudo-tables named in parentheses."""
        engine = self.engine(self.databases[service].name)
        try:
            with engine.connect() as conn:
                return read_snapshot(conn, self.databases[service].name)
        finally:
            engine.dispose()

    def execute(self, service: str, statement: str, params: Mapping | None = None) -> list[tuple]:
        """One statement as the administrator on the service's database (the drill's checks and its
        ``--tamper`` demonstration); the rows it returns."""
        engine = self.engine(self.databases[service].name)
        try:
            with engine.begin() as conn:
                result = conn.execute(sa.text(statement), dict(params or {}))
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            engine.dispose()


def run(command: list[str], env: Mapping[str, str]) -> None:
    """A PostgreSQL client tool; raises with its stderr (which names objects, never row values)."""
    done = subprocess.run(command, env=dict(env), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")


def read_snapshot(conn: sa.Connection, database: str) -> dict[str, TableSnapshot]:
    tables = conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")).scalars()
    snapshot: dict[str, TableSnapshot] = {}
    for table in list(tables):
        key = conn.execute(sa.text(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey::int2[]) WHERE i.indrelid = CAST(:t AS regclass) AND i.indisprimary "
            "ORDER BY array_position(i.indkey::int2[], a.attnum)"), {"t": f'public."{table}"'}).scalars().all()
        result = conn.exec_driver_sql(f'SELECT * FROM public."{table}"')
        snapshot[table] = TableSnapshot.of(list(result.keys()), result.all(), key)
    meta = {
        "(database owner)": ("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = :db", ["owner"]),
        "(owners and grants)": (
            "SELECT c.relname, c.relkind::text, pg_get_userbyid(c.relowner), "
            "COALESCE(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, ''), "
            "COALESCE(a.privilege_type, '') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN LATERAL aclexplode(c.relacl) a ON true "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')",
            ["relation", "kind", "owner", "grantee", "privilege"]),
        "(triggers)": ("SELECT tgrelid::regclass::text, tgname, tgenabled::text FROM pg_trigger WHERE NOT tgisinternal",
                       ["relation", "trigger", "enabled"]),
        "(sequences)": ("SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public'",
                        ["sequence", "last_value"]),
    }
    keys = {"(triggers)": ("relation", "trigger"), "(sequences)": ("sequence",)}
    for name, (query, columns) in meta.items():
        rows = conn.execute(sa.text(query), {"db": database}).all()
        snapshot[name] = TableSnapshot.of(columns, rows, keys.get(name, ()))
    return snapshot


def runtime_role_problems(databases: DrillDatabases, service: str, expected: Mapping[str, Iterable[str]],
                          append_only: Iterable[str]) -> list[str]:
    """The runtime role holds exactly ``expected`` on the tables (table -> privileges; the sequences it uses are
    compared with the originals like every other grant) and owns nothing; the append-only
    tables refuse it UPDATE, DELETE and TRUNCATE; their triggers are enabled. Empty: as it must be."""
    db = databases.databases[service]
    if db.runtime is None:
        return []
    problems = []
    rows = databases.execute(service, (
        "SELECT c.relname, a.privilege_type FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "CROSS JOIN LATERAL aclexplode(c.relacl) a WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') "
        "AND a.grantee = "
        "(SELECT oid FROM pg_roles WHERE rolname = :role)"), {"role": db.runtime})
    held: dict[str, set[str]] = {}
    for table, privilege in rows:
        held.setdefault(table, set()).add(privilege)
    for table in sorted(set(held) | set(expected)):
        want, have = set(expected.get(table, ())), held.get(table, set())
        if want != have:
            problems.append(f"{service}: runtime role on {table}: holds {sorted(have)}, expected {sorted(want)}")
    owned = databases.execute(service, "SELECT count(*) FROM pg_class WHERE relowner = "
                                       "(SELECT oid FROM pg_roles WHERE rolname = :role)", {"role": db.runtime})
    if owned[0][0]:
        problems.append(f"{service}: the runtime role owns {owned[0][0]} relation(s)")
    for table in append_only:
        owner = databases.execute(service, "SELECT tableowner FROM pg_tables WHERE tablename = :t", {"t": table})
        if not owner or owner[0][0] != db.owner:
            problems.append(f"{service}: {table} is not owned by the owner role {db.owner}")
        for privilege in ("UPDATE", "DELETE", "TRUNCATE"):
            allowed = databases.execute(service, "SELECT has_table_privilege(:role, :t, :p)",
                                        {"role": db.runtime, "t": f"public.{table}", "p": privilege})
            if allowed[0][0]:
                problems.append(f"{service}: the runtime role may {privilege} {table}")
        enabled = databases.execute(service, (
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = CAST(:t AS regclass) AND NOT tgisinternal "
            "AND tgenabled <> 'D'"), {"t": f"public.{table}"})
        if not enabled[0][0]:
            problems.append(f"{service}: {table} has no enabled append-only trigger")
    return problems


def event_counts(databases: DrillDatabases) -> dict[str, int]:
    """Rows of each service's event store."""
    return {service: databases.execute(service, "SELECT count(*) FROM events")[0][0] for service in databases.databases}


def signed_root(databases: DrillDatabases, service: str, public_key: bytes) -> SignedRoot:
    """The latest checkpoint the audit log holds, its signature checked with ``public_key`` and its root
    recomputed from the stored records' leaves (RFC 6962), and from the tree store's leaf hashes."""
    from upgestao_privacy.domain.checkpoints import Checkpoint, CheckpointError, verify_checkpoint
    from upgestao_privacy.domain.merkle import leaf_hash, root_of

    latest = databases.execute(service, "SELECT tree_size, root_hash, signed_at, key_id, signature "
                                        "FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1")
    records = databases.execute(service, "SELECT count(*) FROM audit_records")[0][0]
    if not latest:
        return SignedRoot(0, b"", "", "", b"", records, None, False, ("audit log: no checkpoint was signed",))
    size, root, signed_at, key_id, signature = latest[0]
    root, signature = bytes(root), bytes(signature)
    checkpoint = Checkpoint(size, root, signed_at, key_id, signature)
    problems = []
    try:
        verify_checkpoint(checkpoint, public_key)
        signature_ok = True
    except CheckpointError as exc:
        signature_ok = False
        problems.append(f"audit log: {exc}")
    leaves = databases.execute(service, "SELECT leaf FROM audit_records WHERE seq < :n ORDER BY seq", {"n": size})
    recomputed = root_of([leaf_hash(leaf.encode("utf-8")) for (leaf,) in leaves]) if len(leaves) == size else None
    if recomputed is None:
        problems.append(f"audit log: {len(leaves)} records below the checkpoint's tree size {size}")
    stored = databases.execute(service, "SELECT hash FROM audit_tree_nodes WHERE node_id < :n ORDER BY node_id",
                               {"n": size})
    if len(stored) != size or root_of([bytes(h) for (h,) in stored]) != root:
        problems.append("audit log: the tree store's leaf hashes do not give the signed root")
    return SignedRoot(size, root, checkpoint.to_dict()["signed_at"], key_id, signature, records, recomputed,
                      signature_ok, tuple(problems))
