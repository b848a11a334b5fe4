"""The `autorenew` command: run, migrate, mint tokens, export the API description.

autorenew serve [--host H] [--port N]     run the API (migrates first on the default)
autorenew --version                       print the version
autorenew migrate [--revision R]          bring the database to the current schema
autorenew token --sub ID [--admin] [--ttl SECONDS]
autorenew openapi [--out openapi.yaml]    write the API description generated from the app
autorenew renew [--once]                  renewal sweeps: one (prints a summary) or forever
autorenew reencrypt-ibans [--batch-size N]  re-seal stored IBANs under the current key
autorenew sandbox-gateway --port N [--host H] [--public-url URL]
                                          run the Stripe-compatible sandbox gateway alone
autorenew dispatch-events [--once]        send due webhooks now (one pass, or until none due)
autorenew sepa export --date D --out FILE [--schema S]
                                          build the pain.008 batch for collection date D
autorenew import payment-methods FILE [--dry-run] [--partial]
                                          move mandates and cards in from the previous panel
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path

from pydantic import ValidationError

from app import __version__
from app.core.clock import Clock
from app.core.settings import ConfigurationError, get_settings
from app.core.settings_checks import check_settings

Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    def register(func: Command) -> Command:
        COMMANDS[name] = func
        return func

    return register


@command("serve")
def serve(args: argparse.Namespace) -> int:
    import uvicorn

    # The port first: on a busy one nothing else starts (no migration, no scheduler, no
    # "started" lines before the failure). Uvicorn itself listens only once the app has
    # started, so a connection that succeeds is answered at once (TCP readiness probes stay
    # truthful); another process taking the port in between fails as uvicorn always did.
    try:
        _check_port_free(args.host, args.port)
    except OSError as exc:
        where = f"{args.host}:{args.port}"
        print(f"autorenew: cannot listen on {where}: {exc.strerror}", file=sys.stderr)
        return 1

    _default_public_url_to(args.host, args.port)

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # listening, after the app's own startup: the URL answers now
                port = self.servers[0].sockets[0].getsockname()[1]
                host = f"[{args.host}]" if ":" in args.host else args.host
                url = f"http://{host}:{port}"
                print(f"autorenew: serving on {url} (API docs at {url}/docs)", flush=True)

    # proxy_headers=False: the app reads X-Forwarded-For itself, from
    # AUTORENEW_TRUSTED_PROXIES only (app/core/server_proxy.py says why).
    config = uvicorn.Config(
        "app.main:app", host=args.host, port=args.port, log_level="warning", proxy_headers=False
    )
    Server(config).run()
    return 0


def _default_public_url_to(host: str, port: int) -> None:
    """Browsers are sent to `public_base_url` (3-D Secure pages, the SPA's sandbox URL): left
    unset, it follows the address served here rather than a port nobody listens on."""
    if "public_base_url" in get_settings().model_fields_set:
        return
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming, not binding: say the local one
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    os.environ["AUTORENEW_PUBLIC_BASE_URL"] = f"http://{shown}:{port}"
    get_settings.cache_clear()


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As uvicorn binds: a port whose old connections are closing is free; one another
        # process listens on is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


@command("migrate")
def migrate(args: argparse.Namespace) -> int:
    from app.core import migrations
    from app.core.database import create_engine

    async def run() -> None:
        engine = create_engine(get_settings().database_url)
        try:
            if args.revision.startswith("-") or args.revision == "base":
                await migrations.downgrade(engine, args.revision)
            else:
                await migrations.upgrade(engine, args.revision)
        finally:
            await engine.dispose()

    asyncio.run(run())
    print(f"database at {args.revision}")
    return 0


@command("token")
def token(args: argparse.Namespace) -> int:
    from app.core.auth import mint_token
    from app.core.clock import SystemClock

    ttl = timedelta(seconds=args.ttl) if args.ttl is not None else None
    print(
        mint_token(
            get_settings(),
            subject=args.sub,
            admin=args.admin,
            ttl=ttl,
            now=SystemClock().now(),
        )
    )
    return 0


@command("openapi")
def openapi(args: argparse.Namespace) -> int:
    from app.openapi_export import render_openapi

    text = render_openapi()
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


@command("renew")
def renew(args: argparse.Namespace) -> int:
    from app.core.clock import SystemClock
    from app.core.collector import settle_garbage_collector
    from app.core.database import create_engine, create_sessionmaker
    from app.gateways.factory import build_gateway, build_sandbox
    from app.renewals.engine.sweep import RenewalEngine
    from app.runs.service import run_renewals

    settings = get_settings()

    async def run() -> None:
        clock = SystemClock()
        engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
        sandbox = build_sandbox(settings, clock=clock)
        if sandbox is not None:
            await sandbox.start()
        gateway = build_gateway(settings, sandbox=sandbox)
        renewer = RenewalEngine(create_sessionmaker(engine), gateway, clock, settings)
        settle_garbage_collector()  # this process exists to sweep: tuned as the API's is
        try:
            while True:
                summary = await run_renewals(renewer)
                print(json.dumps({"worker": renewer.worker, **vars(summary)}), flush=True)
                if args.once:
                    return
                await asyncio.sleep(settings.renewal_interval_seconds)
        finally:
            await gateway.aclose()
            if sandbox is not None:
                await sandbox.stop()
            await engine.dispose()

    asyncio.run(run())
    return 0


@command("reencrypt-ibans")
def reencrypt_ibans(args: argparse.Namespace) -> int:
    from app.core.crypto import DecryptionError, cipher_from_settings
    from app.core.database import create_engine, create_sessionmaker
    from app.payment_methods.rotation import ReencryptSummary, reencrypt_all

    settings = get_settings()

    async def run() -> ReencryptSummary:
        engine = create_engine(settings.database_url)
        try:
            cipher = cipher_from_settings(settings)
            return await reencrypt_all(create_sessionmaker(engine), cipher, args.batch_size)
        finally:
            await engine.dispose()

    try:
        summary = asyncio.run(run())
    except DecryptionError as exc:
        print(f"autorenew: cannot re-encrypt: {exc}", file=sys.stderr)
        return 1
    print(f"re-encrypted {summary.reencrypted} IBANs; sealed per key id: {summary.by_key}")
    if summary.unreadable:
        print(f"not under the current key (key missing?): {summary.unreadable}", file=sys.stderr)
        return 1
    return 0


@command("sandbox-gateway")
def sandbox_gateway(args: argparse.Namespace) -> int:
    import uvicorn

    from app.sandbox.app import Sandbox
    from app.sandbox.config import SandboxConfig

    config = SandboxConfig.from_settings(get_settings(), public_url=args.public_url)
    uvicorn.run(Sandbox(config).app, host=args.host, port=args.port, log_level="warning")
    return 0


@command("dispatch-events")
def dispatch_events_command(args: argparse.Namespace) -> int:
    from app.core.clock import SystemClock
    from app.core.database import create_engine, create_sessionmaker
    from app.core.scheduler import JobContext
    from app.events.dispatcher import dispatch_events

    async def run() -> None:
        settings = get_settings()
        engine = create_engine(settings.database_url)
        context = JobContext(create_sessionmaker(engine), SystemClock(), settings)
        try:
            # Without --once: drain, but never loop on deliveries that keep failing (each
            # failure is rescheduled into the future, so a pass that claims none ends it).
            for _ in range(1 if args.once else 1000):
                summary = await dispatch_events(context)
                print(
                    f"claimed={summary.claimed} succeeded={summary.succeeded} "
                    f"retrying={summary.retrying} dead={summary.dead}",
                    flush=True,
                )
                if summary.claimed == 0:
                    break
        finally:
            await engine.dispose()

    asyncio.run(run())
    return 0


@command("sepa")
def sepa(args: argparse.Namespace) -> int:
    from app.core.clock import SystemClock
    from app.core.errors import AppError

    try:
        batch_id, content = asyncio.run(sepa_export(args, SystemClock()))
    except AppError as exc:
        print(f"autorenew: {exc.code}: {exc.detail}", file=sys.stderr)
        return 1
    Path(args.out).write_bytes(content)
    print(f"wrote {args.out} (batch {batch_id})")
    return 0


async def sepa_export(args: argparse.Namespace, clock: Clock) -> tuple[str, bytes]:
    """Create the batch for `args.date` (as the admin API does): its id and file."""
    from app.core.crypto import cipher_from_settings
    from app.core.database import create_engine, create_sessionmaker, transaction
    from app.sepa.batches import create_batch, file_of
    from app.sepa.pain008 import Pain008Schema

    settings = get_settings()
    cipher = cipher_from_settings(settings)
    engine = create_engine(settings.database_url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            batch, _ = await create_batch(
                session,
                collection_date=args.date,
                schema=Pain008Schema(args.schema),
                settings=settings,
                cipher=cipher,
                now=clock.now(),
            )
            content, batch_id = file_of(batch, cipher), batch.id
    finally:
        await engine.dispose()
    return batch_id, content


def _subject(value: str) -> str:
    # An empty `sub` would mint a token for nobody that every route then refuses.
    if not value.strip():
        raise argparse.ArgumentTypeError("the subject may not be empty")
    return value


def _positive_seconds(value: str) -> int:
    # 0 used to fall back to the default silently and a negative one minted an expired token.
    try:
        seconds = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of seconds: {value!r}") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {seconds}")
    return seconds


@command("import")
def import_command(args: argparse.Namespace) -> int:
    from app.imports.cli import import_payment_methods

    return import_payment_methods(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autorenew", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"autorenew {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)

    p = sub.add_parser("migrate", help="apply database migrations")
    p.add_argument("--revision", default="head", help="target revision (default: head)")

    p = sub.add_parser("token", help="print a signed bearer token for local use")
    p.add_argument("--sub", required=True, type=_subject, help="customer id")
    p.add_argument("--admin", action="store_true", help="add the billing:admin scope")
    p.add_argument("--ttl", type=_positive_seconds, default=None, help="lifetime in seconds")

    p = sub.add_parser("dispatch-events", help="send due webhook deliveries now")
    p.add_argument("--once", action="store_true", help="one pass only")

    p = sub.add_parser("openapi", help="write the OpenAPI description")
    p.add_argument("--out", default="openapi.yaml")

    p = sub.add_parser("renew", help="run renewal sweeps (a worker), or one with --once")
    p.add_argument("--once", action="store_true", help="one sweep, print its summary, exit")

    p = sub.add_parser("sepa", help="SEPA direct debit files")
    sepa_sub = p.add_subparsers(dest="sepa_command", required=True)
    p = sepa_sub.add_parser("export", help="create the pain.008 batch for a date, write its file")
    p.add_argument("--date", type=date.fromisoformat, required=True, help="YYYY-MM-DD")
    p.add_argument("--out", required=True, help="where to write the XML file")
    p.add_argument(
        "--schema",
        default="pain.008.001.08",
        choices=["pain.008.001.08", "pain.008.001.02"],
    )

    p = sub.add_parser("import", help="import data from the previous customer panel")
    import_sub = p.add_subparsers(dest="import_command", required=True)
    p = import_sub.add_parser(
        "payment-methods", help="import SEPA mandates and gateway cards from an NDJSON file"
    )
    p.add_argument("file", help="the NDJSON file, one record per line")
    p.add_argument("--dry-run", action="store_true", help="check everything, change nothing")
    p.add_argument("--partial", action="store_true", help="import the good lines, skip the bad")
    p.add_argument(
        "--operator", default=None, help="who runs it, for the audit (default: cli:$USER)"
    )

    p = sub.add_parser("reencrypt-ibans", help="re-seal stored IBANs under the current key")
    p.add_argument("--batch-size", type=int, default=200)
    p = sub.add_parser("sandbox-gateway", help="run the Stripe-compatible sandbox gateway alone")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument(
        "--public-url", default=None, help="how browsers reach it (default: the request's host)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_settings(get_settings())
        return COMMANDS[args.command](args)
    except (ConfigurationError, ValidationError) as exc:
        print(f"autorenew: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
