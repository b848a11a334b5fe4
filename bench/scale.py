"""Does a sweep cost the same with 10,000 and with 1,000,000 services, for the same work?

    .venv/bin/python -m bench.scale [--due 2000] [--sizes 10000,1000000] [--no-explain]

For each size: a scratch PostgreSQL database is seeded on the server side (INSERT … SELECT
over generate_series) with that many services, of which exactly `--due` are due now for
renewal (active, auto-renewing, paid by a validated card). The rest look like a real book:
domains and hosting, monthly to three-yearly periods, expiries spread from just past their
lead time to three years away, some with auto-renew off, some cancelled, some paying with
an expired card; about three services per customer; a third of the services have last
period's renewal (with its attempt and two events) on record.

Then one full sweep (RenewalEngine.sweep, instant in-process gateway) runs in a fresh
subprocess per size, so the peak RSS is that sweep's alone. Printed per size: seed time,
sweep time, renewals succeeded, peak RSS (and how much of it the sweep added on top of the
imports and the engine); then largest/smallest ratios against the aims (time ≤ 1.5x,
memory ≤ 1.2x).

At every size, before its sweep, the sweep's reads are run once with EXPLAIN (ANALYZE,
BUFFERS) inside a transaction that is rolled back (then VACUUM): planning time, execution
time, buffers and the scans each query used, for the record. Every size gets this step, so
each sweep starts from the same warm-up.

Needs PostgreSQL: AUTORENEW_BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1/test);
every database the benchmark creates there is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import greenlet
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.core import migrations
from app.core.clock import SystemClock
from app.core.database import create_engine, create_sessionmaker
from app.core.settings import Settings
from app.renewals.engine.summary import SweepSummary
from app.renewals.engine.sweep import RenewalEngine
from app.renewals.lapse import announce_lapsed
from app.renewals.reminders import send_expiry_reminders
from app.sepa import collections as sepa_collections
from bench.renewals import NullGateway, scratch_database

SERVICES_PER_CUSTOMER = 3
HISTORY_EVERY = 3  # one service in three has last period's renewal on record
AIM_TIME, AIM_MEMORY = 1.5, 1.2


# --- seeding, all on the server ------------------------------------------------------------

# One row per service with the choices every later statement needs. `random()` is seeded
# per size, so a run is repeatable. The due services are spread evenly over the id range
# (every `stride`-th one), so no scan in id order finds them all early by luck.
PLAN = """
CREATE UNLOGGED TABLE bench_plan AS
SELECT i,
       format('svc-%s', lpad(i::text, 8, '0')) AS id,
       i % :customers AS customer,
       i % :stride = 0 AND i / :stride < :due AS due,
       CASE WHEN random() < 0.3 THEN 'domain' ELSE 'hosting' END AS kind,
       random() AS r1, random() AS r2, random() AS r3
FROM generate_series(0, :services - 1) AS i
"""

SHAPE = """
CREATE UNLOGGED TABLE bench_services AS
SELECT p.*,
       CASE WHEN p.due THEN 'active' WHEN p.r1 < 0.05 THEN 'cancelled' ELSE 'active' END
           AS status,
       p.due OR p.r1 >= 0.2 AS auto_renew,
       CASE WHEN p.kind = 'domain'
            THEN (ARRAY[12, 12, 12, 12, 12, 12, 12, 24, 24, 36])[1 + (p.r2 * 10)::int % 10]
            ELSE (ARRAY[1, 1, 12, 12, 12, 12, 12, 12, 24, 36])[1 + (p.r2 * 10)::int % 10]
       END AS period_months,
       CASE WHEN p.kind = 'domain' THEN 14 ELSE 7 END AS lead_days
FROM bench_plan p
"""

SERVICES = """
INSERT INTO services (id, customer_id, kind, name, status, expires_at, expiry_anchor_day,
    period_months, price_amount, price_currency, auto_renew, payment_method_id,
    payment_method_type, created_at, updated_at, cancelled_at, renewal_notice_at,
    expiry_reminder_at, lapsed_at)
SELECT s.id, 'cus_' || s.customer, s.kind, s.kind || ' ' || s.i, s.status, e.expires_at,
       extract(day FROM e.expires_at AT TIME ZONE 'UTC')::int, s.period_months,
       CASE WHEN s.kind = 'domain' THEN 1299 ELSE 499 * s.period_months END, 'EUR',
       s.auto_renew, m.method, CASE WHEN m.method IS NOT NULL THEN 'card' END,
       :now - interval '400 days', :now - interval '30 days',
       CASE WHEN s.status = 'cancelled' THEN :now - interval '10 days' END,
       -- Where the renewal jobs left each service (app/services/schedule.py): planning at
       -- the lead (the sweep runs without the notice), the next expiry reminder of a domain
       -- (30, 7 and -3 days), the expired ones already announced as lapsed.
       CASE WHEN s.status = 'active' AND s.auto_renew AND m.method IS NOT NULL
            THEN e.expires_at - s.lead_days * interval '1 day' END,
       CASE WHEN s.status = 'active' AND s.kind = 'domain' THEN CASE
            WHEN e.expires_at - interval '30 days' > :now THEN e.expires_at - interval '30 days'
            WHEN e.expires_at - interval '7 days' > :now THEN e.expires_at - interval '7 days'
            WHEN e.expires_at + interval '3 days' > :now THEN e.expires_at + interval '3 days'
       END END,
       CASE WHEN e.expires_at < :now THEN e.expires_at END
FROM bench_services s
CROSS JOIN LATERAL (
    SELECT CASE WHEN NOT s.due AND NOT s.auto_renew AND s.r3 < 0.5 THEN NULL
                WHEN NOT s.due AND s.customer % 10 = 0 AND s.r3 < 0.5 THEN 'pm_x' || s.customer
                ELSE 'pm_c' || s.customer END AS method
) AS m
CROSS JOIN LATERAL (
    SELECT date_trunc('second', CASE
        -- Due now: inside the lead time of its kind (7 days hosting, 14 days domains).
        WHEN s.due THEN :now + interval '1 hour' + (s.lead_days - 1) * s.r3 * interval '1 day'
        -- Not renewed by us: anywhere from a year ago to the end of their period.
        WHEN s.status = 'cancelled' OR NOT s.auto_renew
            THEN :now + (s.r3 * (s.period_months * 30 + 365) - 365) * interval '1 day'
        -- Renewing later: from just past the lead time to the end of the current period.
        ELSE :now + (s.lead_days + 1 + s.r3 * greatest(s.period_months * 30 - s.lead_days - 1, 1))
                    * interval '1 day'
    END) AS expires_at
) AS e
"""

METHODS = """
INSERT INTO payment_methods (id, customer_id, type, status, is_default, created_at,
    updated_at, validated_at, gateway_customer_id, gateway_payment_method_id, card_brand,
    card_last4, card_exp_month, card_exp_year)
SELECT 'pm_c' || c, 'cus_' || c, 'card', 'validated', true, :now - interval '500 days',
       :now - interval '500 days', :now - interval '500 days', 'gcus_' || c, 'gpm_' || c,
       'visa', '4242', 1 + c % 12, 2029 + c % 4
FROM generate_series(0, :customers - 1) AS c
UNION ALL
SELECT 'pm_x' || c, 'cus_' || c, 'card', 'expired', false, :now - interval '900 days',
       :now - interval '100 days', :now - interval '900 days', 'gcus_' || c, 'gpmx_' || c,
       'mastercard', '4444', 1 + c % 12, 2024
FROM generate_series(0, :customers - 1, 10) AS c
"""

HISTORY = """
CREATE UNLOGGED TABLE bench_history AS
SELECT s.id AS service_id, s.customer_id, 'ren_h' || substr(s.id, 5) AS renewal_id,
       s.expires_at - s.period_months * interval '1 month' AS period_start,
       s.expires_at AS period_end, s.price_amount, s.payment_method_id,
       s.expires_at - s.period_months * interval '1 month' - interval '7 days' AS charged_at
FROM services s
WHERE s.payment_method_id IS NOT NULL AND substr(s.id, 5)::int % :every = 1
"""

HISTORY_ROWS = [
    """
    INSERT INTO renewals (id, service_id, customer_id, period_start, period_end, amount,
        currency, payment_method_id, status, due_at, next_attempt_at, attempt_count,
        failed_charge_count, created_at, updated_at, finished_at)
    SELECT renewal_id, service_id, customer_id, period_start, period_end, price_amount, 'EUR',
           payment_method_id, 'succeeded', charged_at, NULL, 1, 0, charged_at, charged_at,
           charged_at
    FROM bench_history
    """,
    """
    INSERT INTO renewal_attempts (id, renewal_id, number, idempotency_key, payment_method_id,
        amount, currency, status, gateway_charge_id, hard_decline, reconciled, started_at,
        finished_at)
    SELECT 'att_h' || substr(renewal_id, 6), renewal_id, 1,
           'renewal:' || renewal_id || ':attempt:1', payment_method_id, price_amount, 'EUR',
           'succeeded', 'pi_h' || substr(renewal_id, 6), false, false, charged_at, charged_at
    FROM bench_history
    """,
    """
    INSERT INTO events (id, type, schema_version, customer_id, resource_type, resource_id,
        sequence, data, created_at)
    SELECT 'evt_hr' || substr(renewal_id, 6), 'renewal.succeeded', 1, customer_id, 'renewal',
           renewal_id, 1, json_build_object('id', renewal_id, 'status', 'succeeded'),
           charged_at
    FROM bench_history
    UNION ALL
    SELECT 'evt_hs' || substr(renewal_id, 6), 'service.renewed', 1, customer_id, 'service',
           service_id, 1, json_build_object('service_id', service_id), charged_at
    FROM bench_history
    """,
    """
    INSERT INTO event_sequences (resource_type, resource_id, last_sequence)
    SELECT 'renewal', renewal_id, 1 FROM bench_history
    UNION ALL
    SELECT 'service', service_id, 1 FROM bench_history
    """,
]


def _typed(statement: str) -> str:
    # asyncpg prepares statements: a bare parameter in `:now + interval …` has no type yet.
    statement = statement.replace(":now", "CAST(:now AS timestamptz)")
    for name in ("services", "due", "stride", "customers", "every"):
        statement = statement.replace(f":{name}", f"CAST(:{name} AS int)")
    return statement


async def seed(database_url: str, *, services: int, due: int, now: datetime) -> None:
    values = {
        "services": services,
        "due": due,
        "stride": max(services // due, 1),
        "customers": max(services // SERVICES_PER_CUSTOMER, 1),
        "every": HISTORY_EVERY,
        "now": now,
    }
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("SELECT setseed(0.42)"))
            for statement in (PLAN, SHAPE, METHODS, SERVICES, HISTORY, *HISTORY_ROWS):
                await connection.execute(text(_typed(statement)), values)
            await connection.execute(text("DROP TABLE bench_plan, bench_services, bench_history"))
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("VACUUM ANALYZE"))
    finally:
        await engine.dispose()


async def count_due(database_url: str, now: datetime) -> int:
    """Services the seed meant to be due: a check on the seed, not on the engine."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(
                text(
                    _typed(
                        "SELECT count(*) FROM services WHERE status = 'active' AND auto_renew "
                        "AND expires_at <= :now + CASE kind WHEN 'domain' "
                        "THEN interval '14 days' ELSE interval '7 days' END "
                        "AND payment_method_id LIKE 'pm_c%'"
                    )
                ),
                {"now": now},
            )
            return int(result.scalar_one())
    finally:
        await engine.dispose()


# --- the sweep, in a process of its own ----------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident set. Not getrusage's ru_maxrss: Linux carries that over
    from the parent through fork and exec, so a child started by a parent that grew (the
    EXPLAIN step) would report the parent's peak; VmHWM starts afresh with the program."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: kB too


def _caller(statement: str) -> str:
    """The repository function running a statement, else its verb and table. Event hooks
    run in SQLAlchemy's worker greenlet; the coroutines that called it are suspended in
    the parent greenlet."""
    frame = greenlet.getcurrent().parent.gr_frame
    while frame is not None:
        if frame.f_code.co_filename.endswith("repository.py"):
            module = frame.f_code.co_filename.rsplit("/app/", 1)[-1].split("/")[0]
            return f"{module}.{frame.f_code.co_name}"
        frame = frame.f_back
    words = statement.split()
    return " ".join(words[:3] if words[0] in ("INSERT", "DELETE") else words[:2])


def profile_statements(engine: AsyncEngine) -> dict[str, list[float]]:
    """Database time and statement count by caller, for the sweep's figures."""
    spent: dict[str, list[float]] = {}

    def started(connection: Any, cursor: Any, statement: str, *_: Any) -> None:
        connection.info["bench_started"] = time.perf_counter()

    def finished(connection: Any, cursor: Any, statement: str, *_: Any) -> None:
        entry = spent.setdefault(_caller(statement), [0.0, 0])
        entry[0] += time.perf_counter() - connection.info.pop("bench_started")
        entry[1] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", started)
    event.listen(engine.sync_engine, "after_cursor_execute", finished)
    return spent


def bench_settings(database_url: str) -> Settings:
    # The due services are seeded inside their charge lead, as if announced long ago: the
    # sweep plans and charges them at once, without the notice.
    return Settings(database_url=database_url, renewal_notice_days=0)


async def sweep_once(database_url: str) -> dict[str, Any]:
    settings = bench_settings(database_url)
    engine = create_engine(database_url, pool_size=settings.db_pool_size)
    renewer = RenewalEngine(
        create_sessionmaker(engine),
        NullGateway(),  # type: ignore[arg-type]
        SystemClock(),
        settings,
    )
    async with engine.connect() as connection:  # the pool's first connection, like a warm app
        await connection.execute(text("SELECT 1"))
    spent = profile_statements(engine)
    before = peak_rss_mb()
    started = time.perf_counter()
    summary = await renewer.sweep()
    seconds = time.perf_counter() - started
    await engine.dispose()
    return {
        "seconds": seconds,
        "planned": summary.planned,
        "succeeded": summary.succeeded,
        "peak_rss_mb": peak_rss_mb(),
        "baseline_rss_mb": before,
        "database_seconds": spent,
    }


def sweep_in_child(database_url: str) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--child", database_url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


# --- EXPLAIN of the sweep's reads -----------------------------------------------------------


@dataclass
class Explained:
    label: str
    planning_ms: float
    execution_ms: float
    rows: int
    shared_hit: int
    shared_read: int
    scans: list[str]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _scans(plan: dict[str, Any]) -> list[str]:
    scans = []
    for node in _nodes(plan):
        kind = node["Node Type"]
        if "Scan" in kind and "Relation Name" in node:
            index = f" using {node['Index Name']}" if "Index Name" in node else ""
            scans.append(f"{kind} on {node['Relation Name']}{index}")
        elif kind == "Bitmap Index Scan":
            scans.append(f"Bitmap Index Scan {node['Index Name']}")
    return scans


async def explain_sweep(database_url: str) -> list[Explained]:
    """Plan, one claim batch, the SEPA cycle, the reminders and the lapses inside one
    transaction that is rolled back; the first time each read runs, EXPLAIN (ANALYZE,
    BUFFERS) runs it just before."""
    engine = create_engine(database_url)
    explained: dict[str, Explained] = {}

    def explain_first(
        connection: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if many or not statement.lstrip().upper().startswith(("SELECT", "WITH")):
            return
        if statement in explained or statement.startswith("EXPLAIN"):
            return
        label = _caller(statement)
        explained[statement] = Explained(label, 0, 0, 0, 0, 0, [])  # before: no recursion
        result = connection.exec_driver_sql(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters
        ).scalar_one()
        document = result if isinstance(result, list) else json.loads(result)
        plan = document[0]
        top = plan["Plan"]
        explained[statement] = Explained(
            label,
            plan["Planning Time"],
            plan["Execution Time"],
            top.get("Actual Rows", 0),
            top.get("Shared Hit Blocks", 0),
            top.get("Shared Read Blocks", 0),
            _scans(top),
        )

    clock, settings = SystemClock(), bench_settings(database_url)
    connection: AsyncConnection
    async with engine.connect() as connection:
        outer = await connection.begin()
        event.listen(connection.sync_connection, "before_cursor_execute", explain_first)
        # Each unit of work the engine commits becomes a savepoint of the outer transaction.
        maker = async_sessionmaker(
            bind=connection,
            class_=AsyncSession,
            expire_on_commit=False,
            autoflush=False,
            join_transaction_mode="create_savepoint",
        )
        renewer = RenewalEngine(maker, NullGateway(), clock, settings)  # type: ignore[arg-type]
        await renewer.plan()
        # The seed has no scheduled renewal at all, where a live book holds days' worth of
        # them (planned at the notice, charged at the lead): statistics as autovacuum keeps
        # them, with the renewals just planned (ANALYZE counts this transaction's rows).
        await connection.execute(text("ANALYZE renewals"))
        await renewer.claim(SweepSummary())
        await sepa_collections.run_cycle(maker, clock, settings)
        await send_expiry_reminders(maker, clock.now(), settings)
        await announce_lapsed(maker, clock.now(), settings)
        await outer.rollback()
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("VACUUM ANALYZE"))
    await engine.dispose()
    return list(explained.values())


# --- the run --------------------------------------------------------------------------------


@dataclass
class SizeResult:
    services: int
    seed_seconds: float
    sweep: dict[str, Any]


async def measure(server: str, services: int, due: int, explain: bool) -> SizeResult:
    async with scratch_database(server) as database_url:
        engine = create_engine(database_url)
        await migrations.upgrade(engine)
        await engine.dispose()
        now = datetime.now(UTC).replace(microsecond=0)
        started = time.perf_counter()
        await seed(database_url, services=services, due=due, now=now)
        seed_seconds = time.perf_counter() - started
        seeded_due = await count_due(database_url, now)
        assert seeded_due == due, f"seeded {seeded_due} due services, not {due}"
        print(f"{services:>9} services: seeded in {seed_seconds:.1f}s ({due} due)", flush=True)
        if explain:
            for query in await explain_sweep(database_url):
                print(f"  EXPLAIN {query.label}: planning {query.planning_ms:.2f} ms, "
                      f"execution {query.execution_ms:.2f} ms, {query.rows} rows, buffers "
                      f"hit {query.shared_hit} read {query.shared_read}; "
                      f"{'; '.join(query.scans) or 'no table scan'}")  # fmt: skip
        sweep = sweep_in_child(database_url)
        print(f"{services:>9} services: sweep {sweep['seconds']:.2f}s, "
              f"{sweep['succeeded']} renewals succeeded ({sweep['planned']} planned), "
              f"peak RSS {sweep['peak_rss_mb']:.1f} MB "
              f"(+{sweep['peak_rss_mb'] - sweep['baseline_rss_mb']:.1f} MB over the "
              f"{sweep['baseline_rss_mb']:.1f} MB before the sweep)", flush=True)  # fmt: skip
        slowest = sorted(sweep["database_seconds"].items(), key=lambda item: -item[1][0])[:6]
        print("  database time by caller (summed over concurrent connections): " + "; ".join(
            f"{label} {seconds:.2f}s/{count}" for label, (seconds, count) in slowest
        ))  # fmt: skip
        return SizeResult(services, seed_seconds, sweep)


def report(smallest: SizeResult, largest: SizeResult) -> None:
    time_ratio = largest.sweep["seconds"] / smallest.sweep["seconds"]
    memory_ratio = largest.sweep["peak_rss_mb"] / smallest.sweep["peak_rss_mb"]
    scale = f"{largest.services}/{smallest.services}"
    for name, ratio, aim in (("time", time_ratio, AIM_TIME), ("memory", memory_ratio, AIM_MEMORY)):
        verdict = "met" if ratio <= aim else "NOT met"
        print(f"{name:>7} {scale}: {ratio:.2f}x (aim ≤ {aim}x: {verdict})")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--due", type=int, default=2000)
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--no-explain", action="store_true", help="skip the EXPLAIN step")
    parser.add_argument("--child", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(await sweep_once(args.child)))
        return
    server = os.environ.get(
        "AUTORENEW_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )
    sizes = sorted(int(size) for size in args.sizes.split(","))
    if any(size < args.due for size in sizes):
        parser.error("every size must hold at least --due services")
    results = [await measure(server, size, args.due, explain=not args.no_explain) for size in sizes]
    if len(results) > 1:
        report(results[0], results[-1])


if __name__ == "__main__":
    asyncio.run(main())
