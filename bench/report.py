"""Readable tables of bench/results/*.json (``python bench/report.py`` prints them all)."""

from __future__ import annotations

import json
import sys

from common import RESULTS


def table_ping(data: dict) -> list[str]:
    lines = [
        f"{'ping':<16} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}   "
        f"{'healthz req/s':>13} {'p50 ms':>8} {'p99 ms':>8}   {'rps ratio':>9}"
    ]
    for key, f in data["figures"].items():
        b, r = data["baseline"][key], data["ratios"][key]
        lines.append(
            f"{'GET /v1/ping':<16} {key[1:]:>5} {f['rps']:>9.1f} {f['p50_ms']:>8.2f} {f['p99_ms']:>8.2f} "
            f"{f['errors'] + f['non_2xx']:>6}   {b['rps']:>13.1f} {b['p50_ms']:>8.2f} {b['p99_ms']:>8.2f}"
            f"   {r['rps']:>9.3f}"
        )
    for key, c in data.get("loadgen_ceiling", {}).items():
        lines.append(
            f"{'(loadgen ceil.)':<16} {key[1:]:>5} {c['rps']:>9.1f} {c['p50_ms']:>8.2f} {c['p99_ms']:>8.2f}"
            f"   {', '.join(data['parameters']['loadgen'])}"
        )
    return lines


def table_outbox_publish(data: dict) -> list[str]:
    raw = data["baseline"]["raw_kombu"]
    lines = [
        f"{'outbox_publish':<26} {'msgs/s':>9}   {'samples':<30} {'ratio':>6}",
        f"{'raw kombu (baseline)':<26} {raw['msgs_per_s']:>9.0f}   "
        f"{', '.join(f'{x:.0f}' for x in raw['samples']):<30} {1:>6.3f}",
    ]
    for key, f in data["figures"].items():
        if "samples" not in f:
            continue
        ratio = data["ratios"][f"{key}/raw"]
        lines.append(
            f"{key.replace('_', ' (', 1) + ')':<26} {f['msgs_per_s']:>9.0f}   "
            f"{', '.join(f'{x:.0f}' for x in f['samples']):<30} {ratio:>6.3f}"
        )
    nb = data["figures"].get("relay_postgresql_without_broker")
    if nb:
        expected = data["ratios"]["expected_relay_postgresql/raw"]
        lines.append(
            f"{'relay (pg) w/o broker':<26} {nb['msgs_per_s']:>9.0f}   "
            f"{'publish = no-op; expected ->':<30} {expected:>6.3f}"
        )
    target = data["ratios"]["target"]
    ok = "meets" if data["ratios"]["meets_target"] else "MISSES"
    lines.append(
        f"relay(postgresql)/raw {ok} the target {target} "
        f"({data['parameters']['messages']} msgs, {data['parameters']['queue_type']} queue, median of "
        f"{data['parameters']['repetitions']})"
    )
    return lines


def _meets(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def table_identity(data: dict) -> list[str]:
    f, b, r, p = data["figures"], data["baseline"], data["ratios"], data["parameters"]
    lines = [
        f"{'identity':<20} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}   "
        f"{'ping req/s':>10} {'p50 ms':>8} {'p99 ms':>8}   {'rps ratio':>9}  target >= {r['targets']['me/ping rps >=']}"
    ]
    for key, me in f["me"].items():
        ping, ratio = b["ping"][key], r["me/ping"][key]
        lines.append(
            f"{'GET /v1/me':<20} {key[1:]:>5} {me['rps']:>9.1f} {me['p50_ms']:>8.2f} {me['p99_ms']:>8.2f}   "
            f"{ping['rps']:>10.1f} {ping['p50_ms']:>8.2f} {ping['p99_ms']:>8.2f}   {ratio['rps']:>9.3f}  "
            f"{_meets(r['meets'][f'me/ping {key}'])}"
        )
    key = f"c{p['me_loaded_connections']}"
    loaded = f["me_under_logins"][key]
    quiet, logins = b["me_quiet"][key], f["me_under_logins"]["logins"]
    ratio = r["me_under_logins/me_quiet"]["p99"]
    lines.append(
        f"{'GET /v1/me + logins':<20} {key[1:]:>5} {loaded['rps']:>9.1f} {loaded['p50_ms']:>8.2f} "
        f"{loaded['p99_ms']:>8.2f}   {'alone:':>10} {quiet['p50_ms']:>8.2f} {quiet['p99_ms']:>8.2f}   "
        f"{ratio:>9.3f}  p99 ratio, target <= {r['targets']['me_under_logins/me_quiet p99 <=']} "
        f"{_meets(r['meets']['me_under_logins p99'])}"
    )
    lines.append(
        f"{'':<20} {'':>5} ({logins['clients']} login clients: {logins['per_s']} logins/s, "
        f"login p50 {logins['p50_ms']} ms, p99 {logins['p99_ms']} ms; alone {quiet['rps']} req/s)"
    )
    bc = b["bcrypt"]
    lines.append(
        f"{'POST /v1/auth/login':<20} {'conns':>5} {'logins/s':>9} {'p50 ms':>8} {'p99 ms':>8}   "
        f"{'bcrypt limit/s':>14}   {'ratio':>6}"
    )
    for key, got in f["logins"].items():
        lines.append(
            f"{'':<20} {key[1:]:>5} {got['per_s']:>9.2f} {got['p50_ms']:>8.1f} {got['p99_ms']:>8.1f}   "
            f"{bc['limit_per_s']:>14.2f}   {r['logins/bcrypt_limit'][key]:>6.3f}"
        )
    lines.append(
        f"  bcrypt limit = {bc['cores']} cores / {bc['checkpw_ms']} ms (median bcrypt.checkpw, cost {bc['cost']}, "
        f"this process); {p['databases']}; {', '.join(p['loadgen'])}"
    )
    if "me_metrics_on/off" in r:
        target = r["targets"]["me_metrics_on/off rps >="]
        lines.append(f"{'GET /v1/me metrics':<20} {'conns':>5} {'on req/s':>9} {'off req/s':>10}   "
                     f"{'rps ratio':>9}  target >= {target} (on: every /metrics scraped each second)")
        for key, on in f["me_metrics_on"].items():
            meets = _meets(r["meets"][f"me_metrics_on/off {key}"])
            lines.append(f"{'':<20} {key[1:]:>5} {on['rps']:>9.1f} {b['me_metrics_off'][key]['rps']:>10.1f}   "
                         f"{r['me_metrics_on/off'][key]['rps']:>9.3f}  {meets}")
        s = f["scrapes"]
        lines.append(f"  {s['scrapes']} scrapes of {s['targets']} processes, {s['bytes_per_scrape']} bytes each")
    return lines


def table_audit(data: dict) -> list[str]:
    f, b, r, p = data["figures"], data["baseline"], data["ratios"], data["parameters"]
    targets, meets = r["targets"], r["meets"]
    lines: list[str] = []
    if "ingest" in f:
        fi, bi, ri, pi = f["ingest"], b["ingest"], r["ingest"], p["ingest"]

        def samples(values: list[float]) -> str:
            return ", ".join(f"{x:.0f}" for x in values)

        lines += [
            f"{'audit ingest':<30} {'per s':>9}   {'samples':<24} {'ingest/this':>11}",
            f"{'privacy service ingest':<30} {fi['records_per_s']:>9.0f}   {samples(fi['samples']):<24} {1:>11.3f}",
            f"{'raw consume+ack (baseline)':<30} {bi['raw_consume']['msgs_per_s']:>9.0f}   "
            f"{samples(bi['raw_consume']['samples']):<24} {ri['ingest/raw_consume']:>11.3f}",
            f"{'raw batched INSERT (baseline)':<30} {bi['raw_insert']['rows_per_s']:>9.0f}   "
            f"{samples(bi['raw_insert']['samples']):<24} {ri['ingest/raw_insert']:>11.3f}",
            f"{'  both, one after the other':<30} {bi['serial_consume_then_insert']['per_s']:>9.0f}   "
            f"{'1/(1/consume + 1/insert)':<24} {ri['ingest/serial_consume_then_insert']:>11.3f}",
            f"ingest {_meets(meets['ingest_records_per_s'])} the target >= {targets['ingest_records_per_s >=']} "
            f"records/s ({pi['records']} records, median of {pi['repetitions']}; privacy process "
            f"{fi['privacy_cpu_cores']:.2f} cores, machine {100 * fi['machine_cpu_busy']:.0f}% busy, "
            f"start-up {fi['startup_s']} s)",
        ]
    if "queries" in f:
        fq, bq, rq, pq = f["queries"], b["queries"], r["queries"], p["queries"]
        if lines:
            lines.append("")
        lines.append(
            f"{'audit at ' + format(pq['records'], ',') + ' records':<30} {'p50 ms':>8} {'p95 ms':>8} "
            f"{'p99 ms':>8} {'max ms':>8}   {'p99 ratio':>9}  target"
        )
        rows = (
            (
                "search by subject_id",
                fq["search"],
                rq["search/pk_lookup p99"],
                f"p99 <= {targets['search_p99_ms <=']} ms {_meets(meets['search_p99_ms'])}",
            ),
            (
                "inclusion proof",
                fq["proof"],
                rq["proof/pk_lookup p99"],
                f"p99 <= {targets['proof_p99_ms <=']} ms {_meets(meets['proof_p99_ms'])}",
            ),
            ("pk lookup (baseline)", bq["pk_lookup"], 1.0, ""),
        )
        for name, t, ratio, target in rows:
            lines.append(
                f"{name:<30} {t['p50_ms']:>8.2f} {t['p95_ms']:>8.2f} {t['p99_ms']:>8.2f} {t['max_ms']:>8.2f}   "
                f"{ratio:>9.3f}  {target}"
            )
        v = fq["verify"]
        lines += [
            f"{'full verification':<30} {'seconds':>8}   {'parse+hash s':>12} {'ratio':>7}  target",
            f"{'verify_export (' + ('ok' if v['ok'] else 'FAILED') + ')':<30} {v['seconds']:>8.1f}   "
            f"{bq['parse_hash']['seconds']:>12.1f} {rq['verify/parse_hash']:>7.2f}  "
            f"<= {targets['verify_s <=']} s {_meets(meets['verify_s'])}",
            f"  ({pq['iterations']} iterations each after {pq['warmup']}, interleaved; {pq['subjects_distinct']} "
            f"subjects; loaded in {pq['load_s']} s, {pq['database_mib']} MiB; export {fq['export']['seconds']} s, "
            f"{fq['export']['bytes'] / 2**20:.0f} MiB)",
        ]
    return lines


def table_notifier(data: dict) -> list[str]:
    f, raw, r, p = data["figures"], data["baseline"]["raw_smtplib"], data["ratios"], data["parameters"]
    lat, stages = f["latency_ms"], f["stages_ms"]
    lines = [
        f"{'notifier':<30} {'e-mails/s':>9} {'seconds':>8}   {'ratio':>6}  target >= {r['target']}",
        f"{'events -> sink (notifier)':<30} {f['mails_per_s']:>9.1f} {f['seconds']:>8.2f}   "
        f"{r['notifier/raw']:>6.3f}  {_meets(r['meets_target'])}",
        f"{'raw smtplib, 1 conn (baseline)':<30} {raw['mails_per_s']:>9.1f} {'':>8}   {1:>6.3f}  "
        f"runs {', '.join(str(x['mails_per_s']) for x in raw['runs'])}",
        f"  published -> accepted: p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms "
        f"({p['mails']} e-mails, {f['bytes_per_mail']} bytes each; raw {raw['bytes_per_mail']})",
        "  stages p50/p99 ms: " + ", ".join(f"{k} {v['p50']}/{v['p99']}" for k, v in stages.items()),
    ]
    single = f.get("latency_unqueued_ms")
    if single:
        lines.append(f"  unqueued (the {p['warmup_mails']} warm-up e-mails): p50 {single['p50']} ms, "
                     f"p99 {single['p99']} ms")
    cpu = f.get("burst_cpu")
    if cpu:
        lines.append(f"  CPU s in the burst ({cpu['wall_s']} s, machine {100 * cpu['machine_busy']:.0f}% busy): "
                     + ", ".join(f"{k} {v}" for k, v in cpu["cpu_s"].items() if v >= 0.5))
    return lines


def table_messaging(data: dict) -> list[str]:
    t, p = data["targets"], data["parameters"]
    lines = []
    for db, f in data["figures"].items():
        b, r = data["baseline"][db]["ping"], data["ratios"][db]
        meets = r["meets"]
        load = data["load_average_1m"][db]
        lines.append(f"{'messaging (' + db + ')':<28} {'conns':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}   "
                     f"{'ping req/s':>10} {'p50 ms':>7} {'p99 ms':>7}   {'ratio':>6}  target")
        rows = [("POST .../messages (send)", "send", "send/ping")]
        rows += [("GET page of 50", "page", "page/ping"), ("GET messages/search", "search", "search/ping")]
        for label, name, key in rows:
            for level, got in f[name].items():
                if not level.startswith("c"):
                    continue
                ping = b[level]
                if name == "send":
                    target = (f"rps >= {t['send_rps_over_ping_c10 >=']} x ping "
                              f"{_meets(meets['send_rps_over_ping_c10'])}, p50 <= {t['send_p50_ms_c10 <=']:.0f} "
                              f"{_meets(meets['send_p50_ms_c10'])}, p99 <= {t['send_p99_ms_c10 <=']:.0f} "
                              f"{_meets(meets['send_p99_ms_c10'])}" if level == "c10" else "")
                else:
                    target_key = f"{name}_p99_ms_c{p['target_read_connections']}"
                    target = (f"p99 <= {t[f'{name}_p99_ms <=']:.0f} ms {_meets(meets[target_key])}"
                              if target_key in meets and level == f"c{p['target_read_connections']}" else "")
                lines.append(f"{label:<28} {level[1:]:>5} {got['rps']:>8.1f} {got['p50_ms']:>8.2f} "
                             f"{got['p99_ms']:>8.2f}   {ping['rps']:>10.1f} {ping['p50_ms']:>7.2f} "
                             f"{ping['p99_ms']:>7.2f}   {r[key][level]['rps']:>6.3f}  {target}")
                label = ""
        cpu = []
        for name, got in (("ping", b), ("send", f["send"]), ("page", f["page"]), ("search", f["search"])):
            for level, one in got.items():
                if level.startswith("c") and "cpu_ms_per_request" in one:
                    top = ", ".join(f"{k} {v}" for k, v in list(one["cpu_ms_per_request"].items())[:3])
                    cpu.append(f"{name} c{level[1:]} {one['cpu_ms_per_request_total']} ({top})")
        if cpu:
            lines.append("  CPU ms per request, all processes (the top three): " + "; ".join(cpu))
        ceiling = r.get("send_c10_ceiling_without_messaging")
        if ceiling and ceiling.get("sends_per_s"):
            lines.append(f"  send c10 with messaging free (its service, relay and database): the rest "
                         f"{ceiling['rest_cpu_ms_per_send']} ms CPU per send, at most {ceiling['sends_per_s']} "
                         f"sends/s on {ceiling['cores']} cores = {ceiling['over_ping']} x ping")
        paced, ping_paced = f.get("send_paced"), data["baseline"][db].get("ping_paced")
        if paced and ping_paced:
            lines.append(f"  send paced at {paced['paced_rate']} req/s over 10 conns (latency from when due): "
                         f"p50 {paced['p50_ms']:.2f} ms, p99 {paced['p99_ms']:.2f} ms; ping at that rate p50 "
                         f"{ping_paced['p50_ms']:.2f} ms, p99 {ping_paced['p99_ms']:.2f} ms")
        push, rss, seed = f["push"], f["rss"], f["seed"]
        lines.append(f"  push: {push['messages']} messages to {push['clients']} WebSocket clients "
                     f"({push['deliveries']} deliveries): p50 {push['p50_ms']} ms, p99 {push['p99_ms']} ms, "
                     f"max {push['max_ms']} ms; "
                     f"target p99 <= {t['push_p99_ms <=']:.0f} ms {_meets(meets['push_p99_ms'])}")
        if "stages" in push:
            lines.append("    stages p50/p99 ms: " + ", ".join(
                f"{k.replace('_', ' ')} {v['p50_ms']}/{v['p99_ms']}" for k, v in push["stages"].items()))
        drain = f.get("outbox_drain", {})
        if drain:
            lines.append("  messaging's outbox (events and audit records) waited for: " + "; ".join(
                f"{k.replace('_', ' ')} {v['backlog']} rows in {v['seconds']} s" for k, v in drain.items()))
        lines.append(f"  messaging RSS after the run {rss['rss_mib']} MiB (peak {rss['peak_rss_mib']}); target <= "
                     f"{t['rss_mib <=']:.0f} MiB {_meets(meets['rss_mib'])}")
        sizes = (f"; database {seed['database_mib']} MiB, search index {seed['search_index_mib']} MiB"
                 if seed.get("database_mib") is not None else "")
        lines.append(f"  {seed['messages']:,} messages seeded in {seed['seconds']} s ({seed['search_rows']:,} search "
                     f"rows, {seed['big_conversation']:,} in the paged conversation{sizes}); send with "
                     f"{f['send']['listeners']} WebSocket listeners; load average {load['before']} -> {load['after']}")
    z = data["zulip"]
    lines.append(f"  Zulip ({z['setup']}): send at 10 conns {z['send_c10']}; page of 50 {z['page_of_50']}; {z['rss']}")
    return lines


def table_erasure(data: dict) -> list[str]:
    f, r, p = data["figures"], data["ratios"], data["parameters"]
    e, purge, x = f["erase_ms_median"], f["purge_ms_median"], f["export"]
    target = data["targets"]["erase_big_over_small <="]
    lines = [
        f"{'erasure (messaging)':<28} {p['small_messages']:>9} msgs {p['big_messages']:>9} msgs {'ratio':>8}",
        f"{'erase, answered (ms)':<28} {e['small']:>14.2f} {e['big']:>14.2f} {r['erase_big_over_small']:>8.3f}  "
        f"target <= {target}: {_meets(data['met']['erase_big_over_small <='])}",
        f"{'purge, after (ms)':<28} {purge['small']:>14.2f} {purge['big']:>14.2f} {r['purge_big_over_small']:>8.3f}",
        f"{'access bundle (s)':<28} {x['small']['seconds']:>14.3f} {x['big']['seconds']:>14.3f} "
        f"{r['export_seconds_big_over_small']:>8.3f}",
        f"{'  peak RSS (MiB)':<28} {x['small']['peak_rss_mib']:>14.1f} {x['big']['peak_rss_mib']:>14.1f} "
        f"{r['export_peak_rss_big_over_small']:>8.3f}",
        f"  median of {p['repeat']} each, {p['background_messages']} other messages; {p['measured']}",
    ]
    med = f.get("platform_median")
    if med:
        a = f["platform"]["access"]
        lines += [
            f"{'platform: messaging confirmed (s)':<34} {med['small']['messaging_confirmed_s']:>8.3f} "
            f"{med['big']['messaging_confirmed_s']:>14.3f} {r['platform_messaging_confirmed_big_over_small']:>8.3f}",
            f"{'platform: request completed (s)':<34} {med['small']['completed_s']:>8.3f} "
            f"{med['big']['completed_s']:>14.3f} {r['platform_completed_big_over_small']:>8.3f}",
            f"{'platform: messaging purged (s)':<34} {med['small']['purged_s']:>8.3f} {med['big']['purged_s']:>14.3f}",
            f"{'platform: access bundle (s)':<34} {a['small']['seconds']:>8.3f} {a['big']['seconds']:>14.3f} "
            f"{r['platform_access_seconds_big_over_small']:>8.3f}",
            f"  peak RSS after the bundles (MiB): messaging {a['big']['after']['messaging']['peak_rss_mib']}, "
            f"privacy {a['big']['after']['privacy']['peak_rss_mib']} (before them "
            f"{a['small']['before']['messaging']['peak_rss_mib']}, {a['small']['before']['privacy']['peak_rss_mib']})",
        ]
    return lines


def table_webhooks(data: dict) -> list[str]:
    f, raw, r, p = data["figures"], data["baseline"]["raw_signed_posts"], data["ratios"], data["parameters"]
    lat, single = f["latency_ms"], f.get("latency_unqueued_ms")
    lines = [
        f"{'webhooks':<32} {'deliveries/s':>12} {'seconds':>8}   {'ratio':>6}  target >= {r['target']}",
        f"{'events -> receiver (integrations)':<32} {f['deliveries_per_s']:>12.1f} {f['seconds']:>8.2f}   "
        f"{r['integrations/raw']:>6.3f}  {_meets(r['meets_target'])}",
        f"{'raw signed POSTs, 1 conn':<32} {raw['deliveries_per_s']:>12.1f} {'':>8}   {1:>6.3f}  "
        f"runs {', '.join(str(x['deliveries_per_s']) for x in raw['runs'])}",
        f"  event -> delivery in the burst: p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms "
        f"({p['deliveries']} deliveries; {f['checks']['redelivered']} delivered again)",
    ]
    if single:
        lines.append(f"  unqueued (the {p['warmup']} warm-up messages): p50 {single['p50']} ms, p99 {single['p99']} ms")
    cpu = f.get("burst_cpu")
    if cpu:
        lines.append(f"  CPU s in the burst ({cpu['wall_s']} s, machine {100 * cpu['machine_busy']:.0f}% busy): "
                     + ", ".join(f"{k} {v}" for k, v in cpu["cpu_s"].items() if v >= 0.2))
        if "machine_cpu_s" in cpu:
            per = 1000 * cpu["machine_cpu_s"] / max(1, p["deliveries"])
            lines.append(f"  the machine's CPU in the burst: {cpu['machine_cpu_s']} s = {per:.2f} ms per delivery "
                         f"(the raw loop: {1000 / max(1e-9, raw['deliveries_per_s']):.2f} ms of wall time per POST)")
    ceiling = f.get("ceiling_without_integrations")
    if ceiling and ceiling.get("deliveries_per_s"):
        lines.append(f"  with integrations and its database free: the rest of the path "
                     f"{ceiling['rest_cpu_ms_per_delivery']} ms CPU per delivery, at most "
                     f"{ceiling['deliveries_per_s']} deliveries/s on {ceiling['cores']} cores = "
                     f"{r.get('ceiling_without_integrations/raw')} x raw")
    return lines


TABLES = {
    "ping": table_ping,
    "outbox_publish": table_outbox_publish,
    "identity": table_identity,
    "audit": table_audit,
    "notifier": table_notifier,
    "messaging": table_messaging,
    "erasure": table_erasure,
    "webhooks": table_webhooks,
}


def render(data: dict) -> str:
    lines = TABLES[data["scenario"]](data)
    m = data["machine"]
    lines.append(f"  ({data['timestamp']}, {m.get('nproc')} cores {m.get('cpu', '')}, Python {m.get('python')})")
    return "\n".join(lines)


def main(names: list[str]) -> int:
    for name in names or list(TABLES):
        path = RESULTS / f"{name}.json"
        if path.exists():
            print(render(json.loads(path.read_text())) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
