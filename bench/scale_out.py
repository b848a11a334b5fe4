"""Scale-out drill: several `autorenew serve` replicas on one PostgreSQL, one killed every few
seconds while they renew, and then the proof that no renewal was charged twice or left behind.

    .venv/bin/python -m bench.scale_out [--renewals 1000] [--replicas 3] [--kill-every 3]
                                        [--timeout 180] [--seed N]

What it does, without Docker:
- creates two scratch databases on the PostgreSQL server `AUTORENEW_BENCH_DATABASE_URL`
  (default the local `test` server): the service's and the sandbox ledger's; drops them after;
- migrates the service's once (`autorenew migrate`, as the compose recipe's one-shot service);
- starts the sandbox gateway as its own process, slow (50 ms median, random) and faulty (5% of
  its calls fail before acting, fail after acting, or hang past the client's timeout);
- seeds N services due for renewal, paid by cards set up at that sandbox;
- starts the replicas: `autorenew serve`, production settings, scheduler on, a sweep every
  second, 5-second leases, 2-second gateway timeouts;
- every few seconds SIGKILLs a random replica and starts a replacement, until every renewal
  is final (or the time limit: then it lists what is stuck);
- reads the sandbox ledger and the database: one successful charge per renewal (counted by
  the charge's `renewal_id` metadata), nothing unfinished, each renewed service moved exactly
  one period. Prints a summary; exits 0 only when all of that holds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.database import create_engine, create_sessionmaker
from app.renewals.models import FINAL_STATUSES, Renewal, RenewalAttempt
from bench.renewals import scratch_database
from tests import processes
from tests.renewal_runs import Verdict, read_outcome, seed_cards, seed_services

API_KEY = "sk_test_scale_out"
CARDS = 20
# A replica imports the whole service before it listens: seconds on a busy machine.
STARTUP_SECONDS = 120
STARTED = time.monotonic()


def say(message: str) -> None:
    """A progress line: wall-clock time and seconds since the drill started."""
    elapsed = time.monotonic() - STARTED
    print(f"[{time.strftime('%H:%M:%S')} +{elapsed:6.1f}s] {message}", flush=True)


def sandbox_settings() -> dict[str, str]:
    return {
        "AUTORENEW_SANDBOX_LATENCY_MS": "50",
        "AUTORENEW_SANDBOX_LATENCY_MODE": "random",
        "AUTORENEW_SANDBOX_FAULT_RATE": "0.05",
        # Longer than the replicas' read timeout: a hang is a lost answer to reconcile.
        "AUTORENEW_SANDBOX_FAULT_HANG_SECONDS": "3",
    }


def replica_env(database_url: str, gateway_url: str, replicas: int) -> dict[str, str]:
    """Production settings, as the compose recipe sets them, with fresh secrets, and short
    timings so that a killed replica's renewals are taken over within seconds."""
    return {
        "AUTORENEW_ENV": "production",
        "AUTORENEW_DATABASE_URL": database_url,
        "AUTORENEW_REPLICAS": str(replicas),
        "AUTORENEW_MIGRATE_ON_START": "false",
        "AUTORENEW_JWT_SECRET": secrets.token_urlsafe(48),
        "AUTORENEW_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        "AUTORENEW_SEPA_CREDITOR_ID": "ES81000B00000000",
        "AUTORENEW_SEPA_CREDITOR_IBAN": "ES9121000418450200051332",
        "AUTORENEW_GATEWAY": "sandbox",
        "AUTORENEW_SANDBOX_MOUNTED": "false",
        # A drill: production refuses the sandbox gateway unless told it is one.
        "AUTORENEW_ALLOW_SANDBOX_GATEWAY": "true",
        "AUTORENEW_GATEWAY_BASE_URL": gateway_url,
        "AUTORENEW_GATEWAY_API_KEY": API_KEY,
        "AUTORENEW_GATEWAY_CONNECT_TIMEOUT_SECONDS": "1",
        "AUTORENEW_GATEWAY_TIMEOUT_SECONDS": "2",
        # The lease must outlast a whole gateway call, a wait in the client throttle included.
        "AUTORENEW_GATEWAY_RATE_LIMIT_MAX_WAIT_SECONDS": "1",
        "AUTORENEW_SCHEDULER_ENABLED": "true",
        "AUTORENEW_RENEWAL_INTERVAL_SECONDS": "1",
        # The services are seeded days before expiry: charged at once, without a notice.
        "AUTORENEW_RENEWAL_NOTICE_DAYS": "0",
        # Must outlast connect + read timeout (checked at startup).
        "AUTORENEW_RENEWAL_LEASE_SECONDS": "5",
        "AUTORENEW_RENEWAL_BATCH_SIZE": "25",
        "AUTORENEW_RENEWAL_CONCURRENCY": "8",
        "AUTORENEW_DB_POOL_SIZE": "4",
        "AUTORENEW_LOG_LEVEL": "WARNING",
    }


@dataclass
class Replica:
    port: int
    process: subprocess.Popen[bytes]
    listening: bool = False

    def check_listening(self) -> bool:
        if not self.listening:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.05),
            ):
                self.listening = True
        return self.listening


@dataclass
class Fleet:
    """The replica processes; replaced one by one as they are killed."""

    env: dict[str, str]
    log: Path
    running: list[Replica] = field(default_factory=list)
    kills: int = 0
    started: int = 0

    def start_one(self) -> int:
        port = processes.free_port()
        process = processes.start(["serve", "--port", str(port)], self.env, self.log)
        self.running.append(Replica(port, process))
        self.started += 1
        return port

    def all_listening(self) -> bool:
        return all([replica.check_listening() for replica in self.running])

    async def wait_listening(self, limit_seconds: float) -> None:
        deadline = time.monotonic() + limit_seconds
        while not self.all_listening():
            if time.monotonic() > deadline or self.replace_exited():
                raise RuntimeError(f"replicas not up:\n{self.log.read_text()[-3000:]}")
            await asyncio.sleep(0.25)

    def kill_one(self, chance: random.Random) -> Replica:
        victim = self.running.pop(chance.randrange(len(self.running)))
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(timeout=10)
        self.kills += 1
        return victim

    def replace_exited(self) -> list[int]:
        """Replicas that died on their own (not killed here): restarted, and reported."""
        exited = [replica for replica in self.running if replica.process.poll() is not None]
        for replica in exited:
            self.running.remove(replica)
            self.start_one()
        return [replica.port for replica in exited]

    def stop(self) -> None:
        processes.stop([replica.process for replica in self.running])


async def count_by_status(sessionmaker: async_sessionmaker[AsyncSession]) -> Counter[str]:
    async with sessionmaker() as session:
        rows = await session.execute(select(Renewal.status, func.count()).group_by(Renewal.status))
    return Counter({status: int(count) for status, count in rows.all()})


async def count_reconciled(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """Attempts finished by another sweep after their lease ran out (a killed replica, a
    lost answer): the same request re-sent with the same idempotency key."""
    async with sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).select_from(RenewalAttempt).where(RenewalAttempt.reconciled)
        )
    return int(count or 0)


def progress(counts: Counter[str], expected: int, fleet: Fleet) -> str:
    statuses = " ".join(f"{status}={counts[status]}" for status in sorted(counts))
    listening = sum(replica.listening for replica in fleet.running)
    return (
        f"renewals {counts.total()}/{expected} planned: {statuses or '-'} | "
        f"replicas listening {listening}/{len(fleet.running)}, kills {fleet.kills}"
    )


async def run_until_final(
    sessionmaker: async_sessionmaker[AsyncSession],
    fleet: Fleet,
    expected: int,
    kill_every: float,
    limit_seconds: float,
    chance: random.Random,
) -> bool:
    """Kill and replace a replica every `kill_every` seconds (give or take half) while the
    renewals run; True when every renewal is final within the limit. The clock towards the
    next kill starts when every replica listens: on a slow machine a replica takes seconds
    to start, and killing only replicas still starting would test nothing."""
    deadline = time.monotonic() + limit_seconds
    next_kill: float | None = None
    next_report = 0.0
    while time.monotonic() < deadline:
        counts = await count_by_status(sessionmaker)
        unfinished = sum(n for status, n in counts.items() if status not in FINAL_STATUSES)
        if counts.total() == expected and unfinished == 0:
            say(progress(counts, expected, fleet))
            return True
        if crashed := fleet.replace_exited():
            say(f"replica(s) on port {crashed} exited by themselves; replaced (see the log)")
        if next_kill is None and fleet.all_listening():
            next_kill = time.monotonic() + chance.uniform(0.5, 1.5) * kill_every
        if next_kill is not None and time.monotonic() >= next_kill:
            victim = fleet.kill_one(chance)
            new_port = fleet.start_one()
            say(f"SIGKILL replica pid {victim.process.pid} (port {victim.port}); "
                f"replacement starting on port {new_port}")  # fmt: skip
            next_kill = None
        if time.monotonic() >= next_report:
            say(progress(counts, expected, fleet))
            next_report = time.monotonic() + 2
        await asyncio.sleep(0.25)  # waiting on other processes
    return False


def print_summary(
    verdict: Verdict, fleet: Fleet, reconciled: int, seconds: float, finished: bool
) -> None:
    succeeded_charges = verdict.charges_by_status["succeeded"]
    print()
    print("scale-out summary")
    print(f"  time                {seconds:.1f}s")
    print(f"  replicas started    {fleet.started} (kills {fleet.kills})")
    print(f"  renewals by status  {dict(sorted(verdict.renewals_by_status.items()))}")
    print(f"  gateway charges     {dict(sorted(verdict.charges_by_status.items()))}")
    print(f"  successful charges  {succeeded_charges}")
    print(f"  reconciled attempts {reconciled} (lease ran out: killed replica or lost answer)")
    print(f"  duplicates          {len(verdict.duplicates)}")
    print(f"  unfinished          {len(verdict.unfinished)}")
    print(f"  unmatched charges   {len(verdict.unmatched)}")
    print(f"  wrong services      {len(verdict.wrong_services)}")
    for name in ("duplicates", "unfinished", "unmatched", "wrong_services"):
        if ids := getattr(verdict, name):
            print(f"  {name}: {ids[:20]}{' …' if len(ids) > 20 else ''}")
    if not finished:
        print("  NOT FINISHED within the time limit")
    print("  result              " + ("CLEAN" if verdict.clean and finished else "FAILED"))


async def drill(args: argparse.Namespace) -> bool:
    server = os.environ.get(
        "AUTORENEW_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )
    chance = random.Random(args.seed)
    async with AsyncExitStack() as stack:
        database_url = await stack.enter_async_context(scratch_database(server))
        ledger_url = await stack.enter_async_context(scratch_database(server))
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scale-out-")))
        say(f"scratch databases ready; process logs in {folder}")

        migrate = processes.start(
            ["migrate"], {"AUTORENEW_DATABASE_URL": database_url}, folder / "migrate.log"
        )
        if migrate.wait(timeout=120) != 0:
            raise RuntimeError((folder / "migrate.log").read_text())
        gateway = stack.enter_context(
            processes.sandbox_gateway(
                folder,
                name="sandbox",
                ledger=folder / "unused.db",
                AUTORENEW_SANDBOX_DATABASE_URL=ledger_url,
                **sandbox_settings(),
            )
        )
        say(f"migrated; sandbox gateway at {gateway} (50 ms random latency, 5% faults)")

        engine = create_engine(database_url)
        stack.push_async_callback(engine.dispose)
        sessionmaker = create_sessionmaker(engine)
        cards = await seed_cards(gateway, API_KEY, CARDS)
        expiries = await seed_services(sessionmaker, cards, args.renewals)
        say(f"seeded {args.renewals} services due for renewal on {CARDS} sandbox cards")

        fleet = Fleet(replica_env(database_url, gateway, args.replicas), folder / "replicas.log")
        stack.callback(fleet.stop)
        for _ in range(args.replicas):
            fleet.start_one()
        await fleet.wait_listening(STARTUP_SECONDS)
        say(f"{args.replicas} replicas listening on {[r.port for r in fleet.running]}")

        started = time.monotonic()
        finished = await run_until_final(
            sessionmaker, fleet, args.renewals, args.kill_every, args.timeout, chance
        )
        seconds = time.monotonic() - started
        fleet.stop()
        say("replicas stopped; reading the sandbox ledger and the database")
        verdict = await read_outcome(sessionmaker, gateway, API_KEY, expiries)
        if verdict.renewals_by_status.total() != args.renewals:
            finished = False
        reconciled = await count_reconciled(sessionmaker)
        print_summary(verdict, fleet, reconciled, seconds, finished)
        if not (verdict.clean and finished):
            print("\nlast lines of the replicas' log:")
            print(fleet.log.read_text(errors="replace")[-3000:])
        return verdict.clean and finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renewals", type=int, default=1000, help="services due (default 1000)")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=3.0, help="seconds, give or take half")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds for the renewals")
    parser.add_argument("--seed", type=int, default=None, help="which replicas die, and when")
    args = parser.parse_args()
    clean = asyncio.run(drill(args))
    sys.exit(0 if clean else 1)


if __name__ == "__main__":
    main()
