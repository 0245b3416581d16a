"""``make restore-drill``: back the platform up, lose it, restore it, and prove nothing was lost.

On this machine's PostgreSQL and RabbitMQ, on a platform of its own (a vhost, a database and an owner
role per service, privacy's runtime role, a free gateway port, the SMTP sink on a free port), all of
it removed at the end, on failure too:

1. start the whole platform (every service, every relay, the gateway) on PostgreSQL;
2. seed data through the gateway's HTTP API (``restore_drill_seed``), then wait (bounded polling)
   until every outbox is sent, every queue is empty, the counts hold still and the audit log has
   signed a checkpoint covering every record;
3. stop the platform and capture the originals: every table of every service database (full rows,
   sorted; values are never printed), owners, grants, triggers and sequences, the event stores'
   counts, and the audit log's latest signed checkpoint (tree size, root hash, signature);
4. ``pg_dump --format=custom`` each database, DROP it, create it again empty (owned by the service's
   role), ``pg_restore`` it; the runtime role's grants on the audit log are checked;
5. compare every table with the original (the restore itself);
6. ``python -m <package> rebuild`` per service (privacy's as its owner): the read models are emptied
   and replayed from the restored event store; compare every read model with the original;
7. compare the audit log's signed root: identical, its signature verified with the public key, and
   its root recomputed from the restored records' leaves;
8. start the platform again on the restored databases: ``/readyz``, log in as the seeded admin and the
   dpo, read back the customers, the conversation's messages, the chat, the integrations, the privacy
   request (the same answers as before the backup), search the audit log, write a new customer and
   find its audit record, and ``audit verify --url`` the live log against the public key.

Exit status 0: identical and served; 1: a difference (each one named: database, table, columns) or a
failed step. ``--tamper read-model`` or ``--tamper event`` changes one row of a restored database
before the comparisons, to show that the drill notices.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import quote

import upgestao_platform as up
from restore_drill_compare import SignedRoot, TableComparison, compare_roots, compare_snapshots, summary_counts
from restore_drill_database import META_TABLES, DrillDatabases, event_counts, runtime_role_problems, signed_root
from restore_drill_seed import (
    ADMIN_EMAIL,
    ADMIN_ENV,
    ADMIN_PASSWORD,
    PASSWORD,
    Gateway,
    SeedError,
    assign_role,
    differing_answers,
    poll,
    read_back,
    seed,
)
from upgestao_kernel.config import env_prefix
from upgestao_kernel.service_registry import service_definitions, service_package

PG_ADMIN_URL = os.environ.get("RESTORE_DRILL_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
AUDIT_SERVICE = "privacy"  # holds the audit log, and a runtime role besides its owner
UNROUTED_QUEUE = "upgestao.unrouted"
QUIET_S = 6.0  # the counts hold still this long (longer than the management API's 5 s statistics interval)


class DrillFailed(Exception):
    """A difference or a failed step: the drill exits 1 with this message."""


class Clock:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.start:6.1f} s] {text}", flush=True)


# -- the platform ------------------------------------------------------------------------------------


def platform_env(databases: DrillDatabases) -> dict[str, str]:
    env = {"UPGESTAO_ENV": "test", "UPGESTAO_RETRY_DELAYS_MS": "100,200", **ADMIN_ENV}
    for service, db in databases.databases.items():
        if db.runtime_url:  # privacy: runs as its runtime role, migrated as the owner
            env[f"{env_prefix(service)}_DATABASE_URL"] = db.runtime_url
            env[f"{env_prefix(service)}_MIGRATION_DATABASE_URL"] = db.owner_url
        else:
            env[f"{env_prefix(service)}_DATABASE_URL"] = db.owner_url
    return env


def start_platform(data_dir: Path, amqp_uri: str, env: Mapping[str, str], clock: Clock) -> up.Platform:
    platform = up.Platform(data_dir=data_dir, amqp_uri=amqp_uri, http_address=up.free_address(), env=env,
                           echo=lambda text: clock.say("platform: " + text.splitlines()[0]))
    platform.start(timeout=180)
    clock.say(f"platform ready at {platform.url} ({len(platform.children)} processes)")
    return platform


def privacy_command(platform: up.Platform, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([platform.python, "-m", "upgestao_privacy", *args],
                          env=platform.environment(AUDIT_SERVICE), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def public_key_of(platform: up.Platform) -> tuple[str, bytes]:
    from upgestao_privacy.domain.checkpoints import decode_public_key

    done = privacy_command(platform, "audit", "public-key")
    if done.returncode != 0:
        raise DrillFailed(f"privacy audit public-key failed: {done.stderr.strip()[-500:]}")
    text = done.stdout.strip().splitlines()[-1]
    return text, decode_public_key(text)


# -- quiescence ----------------------------------------------------------------------------------------


def queue_backlog(admin: up.RabbitAdmin, vhost: str) -> tuple[list[str], list[str]]:
    """(queues holding messages, parked queues holding messages) of the vhost. Streams are logs, not work;
    ``upgestao.unrouted`` keeps (bounded) what no service binds: neither waits for anyone."""
    status, body = admin.request("GET", f"/api/queues/{quote(vhost, safe='')}?columns=name,type,messages")
    if status != 200:
        raise DrillFailed(f"RabbitMQ management API: GET queues answered {status}")
    import json

    busy, parked = [], []
    for queue in json.loads(body):
        if queue.get("type") == "stream" or queue["name"] == UNROUTED_QUEUE or not queue.get("messages"):
            continue
        (parked if queue["name"].endswith(".parked") else busy).append(queue["name"])
    return busy, parked


def wait_until_quiet(databases: DrillDatabases, admin: up.RabbitAdmin, vhost: str, clock: Clock,
                     timeout: float = 180) -> dict[str, int]:
    """Until every outbox is sent, no queue holds a message, the counts hold still for ``QUIET_S`` and the
    latest signed checkpoint covers every audit record; the final counts."""
    deadline = time.monotonic() + timeout
    last: tuple | None = None
    still_since = time.monotonic()
    while True:
        unsent = {s: databases.execute(s, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")[0][0]
                  for s in databases.databases}
        counts = tuple(sorted(event_counts(databases).items()))
        handled = tuple(databases.execute(s, "SELECT count(*) FROM processed_events")[0][0]
                        for s in databases.databases)
        records = databases.execute(AUDIT_SERVICE, "SELECT count(*) FROM audit_records")[0][0]
        signed = databases.execute(AUDIT_SERVICE, "SELECT COALESCE(max(tree_size), -1) FROM audit_checkpoints")[0][0]
        busy, parked = queue_backlog(admin, vhost)
        if parked:
            raise DrillFailed(f"messages were parked while seeding: {', '.join(parked)}")
        state = (counts, handled, records)
        if state != last:
            last, still_since = state, time.monotonic()
        quiet = (not any(unsent.values()) and not busy and signed == records
                 and time.monotonic() - still_since >= QUIET_S)
        if quiet:
            clock.say(f"quiet: outboxes sent, queues empty, {records} audit records all under a signed checkpoint")
            return dict(counts)
        if time.monotonic() >= deadline:
            raise DrillFailed(f"not quiet within {timeout:.0f} s: unsent outbox rows {unsent}, busy queues {busy}, "
                              f"{records} audit records, latest checkpoint over {signed}")
        time.sleep(0.5)


# -- the tamper demonstration -------------------------------------------------------------------------


def tamper(databases: DrillDatabases, how: str, read_models: Mapping[str, set[str]], clock: Clock) -> None:
    """Change one row of a restored database, as a bad backup would: a read model's text column
    (``read-model``), or a value in one event's data that a read model shows (``event``)."""
    if how == "read-model":
        for service, tables in read_models.items():
            for table in sorted(tables):
                columns = databases.execute(service, (
                    "SELECT column_name FROM information_schema.columns c WHERE table_schema = 'public' "
                    "AND table_name = :t AND data_type IN ('character varying', 'text') AND NOT EXISTS ("
                    "SELECT 1 FROM information_schema.key_column_usage k WHERE k.table_name = c.table_name "
                    "AND k.column_name = c.column_name) ORDER BY ordinal_position"), {"t": table})
                for (column,) in columns:  # its first character replaced: the same length, another value
                    changed = databases.execute(service, (
                        f'UPDATE public."{table}" SET "{column}" = overlay("{column}" placing CASE WHEN '
                        f'left("{column}", 1) = \'x\' THEN \'y\' ELSE \'x\' END from 1 for 1) WHERE ctid = '
                        f'(SELECT ctid FROM public."{table}" WHERE "{column}" <> \'\' LIMIT 1) RETURNING 1'))
                    if changed:
                        clock.say(f"TAMPERED: one row of {service}.{table}, column {column}")
                        return
    if how == "event":
        service = "messaging"
        rows = databases.execute(service, "SELECT position, data::text FROM events WHERE type LIKE "
                                          "'messaging.conversation_opened%' ORDER BY position LIMIT 1")
        if rows:
            position, _ = rows[0]
            databases.execute(service, "UPDATE events SET data = jsonb_set(data::jsonb, '{channel}', "
                                       "'\"email\"')::json WHERE position = :p", {"p": position})
            clock.say(f"TAMPERED: the data of {service}'s event at position {position} (its channel)")
            return
    raise DrillFailed(f"--tamper {how}: found nothing to change")


# -- the drill -------------------------------------------------------------------------------------------


def print_comparisons(title: str, results: list[TableComparison]) -> None:
    tables, rows, different = summary_counts(results)
    print(f"\n{title}: {tables} tables, {rows} rows before, {different} different")
    print(f"  {'database':<14} {'table':<34} {'before':>6} {'after':>6}")
    for result in results:
        print(result.line())


def print_root(before: SignedRoot, after: SignedRoot, public_key: str) -> None:
    import base64

    print("\naudit log's signed root (latest checkpoint):")
    for label, root in (("before", before), ("after", after)):
        print(f"  {label:<6} tree_size {root.tree_size:>6}  root {base64.b64encode(root.root_hash).decode()}  "
              f"records {root.records}  signed_at {root.signed_at}  key {root.key_id}  "
              f"signature {'verifies' if root.signature_ok else 'DOES NOT VERIFY'}")
    recomputed = after.recomputed_root == after.root_hash
    print(f"  public key {public_key}; the restored records' leaves give the signed root: "
          f"{'yes' if recomputed else 'NO'}")


def run_drill(args: argparse.Namespace, clock: Clock) -> None:
    definitions = service_definitions()
    services = tuple(definitions)
    read_models = {name: {t.name for p in d.projections() for t in p.tables} for name, d in definitions.items()}
    from upgestao_privacy.adapters.database_roles import APPEND_ONLY_TABLES, RUNTIME_PRIVILEGES

    tag = uuid.uuid4().hex[:8]
    vhost = f"restore-drill-{tag}"
    data_dir = Path(tempfile.mkdtemp(prefix=f"restore-drill-{tag}-"))
    dumps = data_dir / "dumps"
    dumps.mkdir()
    rabbit = up.RabbitAdmin(up.DEFAULT_AMQP_URI)
    databases = DrillDatabases(PG_ADMIN_URL, tag, services, runtime_services={AUDIT_SERVICE})
    platform: up.Platform | None = None
    cleanups: list[tuple[str, Callable[[], object]]] = []
    try:
        rabbit.create_vhost(vhost)
        cleanups.append((f"vhost {vhost} and its broker users", lambda: rabbit.delete_vhost(vhost)))
        cleanups.append(("databases and roles", databases.remove))
        databases.create()
        clock.say(f"created vhost {vhost}, {len(services)} databases drill_{tag}_<service> with their owner roles, "
                  f"{AUDIT_SERVICE}'s runtime role; data dir {data_dir}")
        amqp_uri = up.amqp_uri_with_vhost(up.DEFAULT_AMQP_URI, vhost)
        env = platform_env(databases)

        # 1-2. start, seed through the gateway, wait until everything is written, checkpointed and quiet
        platform = start_platform(data_dir, amqp_uri, env, clock)
        gateway = Gateway(platform.url)
        seeded = seed(gateway, lambda user_id: assign_role(platform.python, platform.environment("identity"),
                                                           user_id, "dpo"),
                      customers=args.customers, messages=args.messages)
        clock.say(f"seeded through the gateway: 4 staff users (a dpo), {len(seeded.customers)} customers, a team, "
                  f"an API key, a conversation with {args.messages} messages, a chat, a policy acceptance, a consent, "
                  "a privacy request (started), an integration (secret rotated), a password reset (mailed)")
        wait_until_quiet(databases, rabbit, vhost, clock)
        public_key_text, public_key = public_key_of(platform)
        platform.stop()
        platform = None
        clock.say("platform stopped")

        # 3. the originals
        original = {service: databases.snapshot(service) for service in services}
        original_events = event_counts(databases)
        original_root = signed_root(databases, AUDIT_SERVICE, public_key)
        if original_root.problems:
            raise DrillFailed("the original audit log is not sound: " + "; ".join(original_root.problems))
        tables = sum(len([t for t in s if t not in META_TABLES]) for s in original.values())
        clock.say(f"captured {tables} tables of {len(services)} databases, events {original_events}, "
                  f"audit checkpoint over {original_root.tree_size} records")

        # 4. dump, drop, create empty, restore
        sizes = {}
        for service in services:
            sizes[service] = databases.dump(service, dumps).stat().st_size
        clock.say("pg_dump --format=custom: " + ", ".join(f"{s} {n / 1024:.0f} KiB" for s, n in sizes.items()))
        for service in services:
            databases.drop_and_recreate(service)
            if databases.table_count(service):
                raise DrillFailed(f"{service}: the re-created database is not empty")
        clock.say(f"dropped the {len(services)} databases and created them again, empty")
        for service in services:
            databases.restore(service, dumps / f"{service}.dump")
        clock.say("pg_restore done")
        if args.tamper:
            tamper(databases, args.tamper, read_models, clock)

        problems: list[str] = []
        restored = {service: databases.snapshot(service) for service in services}
        results = compare_snapshots(original, restored)
        print_comparisons("restored databases (every table, owners, grants, triggers, sequences) vs the originals",
                          results)
        problems += [f"restore: {r.database}.{r.table}: {r.difference}" for r in results if not r.equal]
        role_problems = runtime_role_problems(databases, AUDIT_SERVICE, RUNTIME_PRIVILEGES, APPEND_ONLY_TABLES)
        print(f"\n{AUDIT_SERVICE}'s runtime role after the restore: "
              + ("exactly its grants, owns nothing, no UPDATE/DELETE/TRUNCATE on "
                 f"{', '.join(APPEND_ONLY_TABLES)}, append-only triggers enabled" if not role_problems
                 else "; ".join(role_problems)))
        problems += role_problems

        # 5. rebuild every read model from the restored event store
        for service in services:
            started = time.monotonic()
            rebuilt = rebuild(service, definitions, databases, env)
            clock.say(f"{service} rebuild: {rebuilt} ({time.monotonic() - started:.1f} s)")
        rebuilt_snapshot = {service: databases.snapshot(service) for service in services}
        results = compare_snapshots(original, rebuilt_snapshot, tables=read_models)
        print_comparisons("read models rebuilt from the restored event stores vs the originals", results)
        problems += [f"rebuild: {r.database}.{r.table}: {r.difference}" for r in results if not r.equal]
        restored_events = event_counts(databases)
        print("\nevent stores: " + ", ".join(f"{s} {original_events[s]}/{restored_events[s]}" for s in services)
              + " (before/after)")
        problems += [f"events: {s}: {original_events[s]} before, {restored_events[s]} after"
                     for s in services if original_events[s] != restored_events[s]]

        # 6. the audit log's signed root
        restored_root = signed_root(databases, AUDIT_SERVICE, public_key)
        print_root(original_root, restored_root, public_key_text)
        problems += compare_roots(original_root, restored_root)
        if problems:
            raise DrillFailed("the restore is NOT identical:\n  " + "\n  ".join(problems))
        clock.say("restore identical: every table, every read model rebuilt, the signed root")

        # 7. the platform on the restored databases
        platform = start_platform(data_dir, amqp_uri, env, clock)
        serve_restored(platform, seeded, clock, public_key_text)
        platform.stop()
        platform = None
        clock.say("platform stopped")
    finally:
        if platform is not None:
            platform.stop()
        for what, job in reversed(cleanups):
            try:
                left = job()
                if left:
                    print(f"cleanup: {what}: {left}", file=sys.stderr)
            except Exception as exc:  # noqa: BLE001 - every cleanup is tried; each failure is said
                print(f"cleanup: {what} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        shutil.rmtree(data_dir, ignore_errors=True)
        clock.say(f"removed vhost {vhost}, its broker users, the drill's databases and roles, {data_dir}")


def rebuild(service: str, definitions: Mapping, databases: DrillDatabases, env: Mapping[str, str]) -> str:
    """``python -m <package> rebuild`` as the service's owner role (privacy's runtime role may not empty a
    read model)."""
    run_env = {**os.environ, **env, f"{env_prefix(service)}_DATABASE_URL": databases.databases[service].owner_url,
               "AMQP_URI": up.DEFAULT_AMQP_URI}
    run_env.pop(f"{env_prefix(service)}_MIGRATION_DATABASE_URL", None)
    done = subprocess.run([up.default_python(), "-m", service_package(definitions[service]), "rebuild"],
                          env=run_env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise DrillFailed(f"{service} rebuild failed: {up.clean_output(done.stderr, 10)}")
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "(no output)"


def serve_restored(platform: up.Platform, seeded, clock: Clock, public_key: str) -> None:
    """The restarted platform serves the restored data and still writes (and audits what it writes)."""
    status, _ = platform.readyz()
    if status != 200:
        raise DrillFailed(f"/readyz answered {status} on the restored platform")
    gateway = Gateway(platform.url)
    admin = gateway.login_when_ready(ADMIN_EMAIL, ADMIN_PASSWORD)
    dpo = gateway.login(seeded.dpo_email, PASSWORD)
    answers = read_back(gateway, seeded, admin, gateway.login(seeded.attendant_email, PASSWORD), dpo)
    different = differing_answers(seeded.answers, answers)
    if different:
        raise DrillFailed(f"the restored platform answers differently for: {', '.join(different)}")
    clock.say(f"restored platform: /readyz 200, admin and dpo logged in, {len(answers)} reads answer as before "
              "the backup (customers, the conversation and its messages, the chat, integrations, API keys, "
              "the privacy request)")
    seen = gateway.call("GET", "/v1/audit", dpo, params={"subject_id": seeded.customers[0], "limit": 100})["items"]
    if not any(item.get("action") == "create" and item.get("resource_type") == "customer" for item in seen):
        raise DrillFailed("the audit search finds no record of the seeded customer's creation")
    clock.say(f"audit search as the dpo: {len(seen)} records about the first seeded customer, its creation among them")
    created = gateway.call("POST", "/v1/customers", admin, 201,
                           json={"full_name": "Cliente depois da restauração",
                                 "email": f"cliente.{uuid.uuid4().hex[:8]}@example.com.br"})

    def audited() -> bool:
        items = gateway.call("GET", "/v1/audit", dpo, params={"subject_id": created["id"], "limit": 50})["items"]
        return any(item.get("action") == "create" and item.get("resource_type") == "customer" for item in items)

    poll(audited, 30, "the new customer's audit record")
    if gateway.call("GET", f"/v1/customers/{created['id']}", admin)["id"] != created["id"]:
        raise DrillFailed("the new customer cannot be read back")
    clock.say("restored platform writes: a new customer created, read back, and its audit record found")
    done = privacy_command(platform, "audit", "verify", "--url", platform.url, "--token", dpo,
                           "--public-key", public_key)
    if done.returncode != 0:
        raise DrillFailed(f"audit verify --url failed (exit {done.returncode}): {done.stdout[-800:]}")
    clock.say("audit verify --url (export, inclusion and consistency proofs, signatures): "
              + done.stdout.strip().splitlines()[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=3, help="customers to seed (default 3)")
    parser.add_argument("--messages", type=int, default=4, help="messages in the seeded conversation (default 4)")
    parser.add_argument("--tamper", choices=("read-model", "event"),
                        help="change one restored row before comparing: the drill must fail")
    args = parser.parse_args(argv)
    clock = Clock()
    try:
        run_drill(args, clock)
    except (DrillFailed, SeedError, up.PlatformError, RuntimeError, OSError) as exc:
        clock.say(f"RESTORE DRILL FAILED: {exc}")
        return 1
    clock.say("RESTORE DRILL PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
