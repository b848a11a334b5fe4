"""HTTP for imports (admin): payment methods from the previous customer panel, as NDJSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from app.core.crypto import cipher_from_settings
from app.core.deps import AdminDep, ClockDep, GatewayDep, SessionmakerDep, SettingsDep
from app.core.errors import Unprocessable, UnsupportedMedia, problem_responses
from app.imports.lines import LineLimits, read_lines
from app.imports.schemas import ImportReport
from app.imports.service import ImportRun, run_import

router = APIRouter(prefix="/v1/admin/imports", tags=["imports (admin)"])

NDJSON = "application/x-ndjson"
# Generated clients (openapi-python-client) send files as bytes, labelled octet-stream; the
# body is read as NDJSON either way.
ACCEPTED_MEDIA = (NDJSON, "application/octet-stream")

DESCRIPTION = f"""\
One record per line (`{NDJSON}`), streamed: the body is never held whole nor stored.

- SEPA: `{{"type": "sepa_debit", "customer_id", "iban", "account_holder_name", "mandate":
  {{"reference", "signed_at", "signer_name"?, "last_collected_at"?}}, "services"?: [ids]}}`
- card: `{{"type": "card", "customer_id", "gateway_customer_id",
  "gateway_payment_method_id", "services"?: [ids]}}`

Mandates keep their reference and signature date; one collected from before is RCUR next,
one never used FRST; one unused for 36 months is imported as lapsed (`failed`,
`mandate_lapsed`). Cards are verified at the gateway (exists, attached to that gateway
customer, not expired); their details come from the gateway. A line naming a mandate
reference or gateway payment method already here is skipped (`already_present`), so running
the same file again is safe. Services listed are assigned to the method and renew
automatically, with the usual checks and audit entries.

By default any refused line imports nothing: 422 `import_refused` with the report under
`report`. `partial=true` imports the good lines; `dry_run=true` checks everything and
changes nothing (the gateway is only read). Limits: `AUTORENEW_IMPORT_MAX_BYTES` (413
`payload_too_large`), `AUTORENEW_IMPORT_MAX_LINES` records (413 `import_too_many_lines`),
`AUTORENEW_IMPORT_MAX_LINE_BYTES` per line (that line refused, `line_too_long`); larger
files go through `autorenew import payment-methods`.
"""


@router.post(
    "/payment-methods",
    response_model=ImportReport,
    summary="Import SEPA mandates and gateway cards from the previous customer panel",
    description=DESCRIPTION,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                NDJSON: {"schema": {"type": "string"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
    responses=problem_responses(400, 401, 403, 413, 415, 422),
)
async def import_payment_methods(
    request: Request,
    admin: AdminDep,
    settings: SettingsDep,
    clock: ClockDep,
    gateway: GatewayDep,
    sessionmaker: SessionmakerDep,
    dry_run: Annotated[bool, Query(description="Check everything, change nothing.")] = False,
    partial: Annotated[bool, Query(description="Import the good lines, skip the bad.")] = False,
) -> ImportReport:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in ACCEPTED_MEDIA:
        raise UnsupportedMedia(
            f"Send the file as {NDJSON}, one JSON record per line.",
            code="unsupported_media_type",
        )
    limits = LineLimits(
        max_line_bytes=settings.import_max_line_bytes,
        max_lines=settings.import_max_lines,
        max_bytes=settings.import_max_bytes,
    )
    run = ImportRun(
        sessionmaker=sessionmaker,
        gateway=gateway,
        cipher=cipher_from_settings(settings),
        settings=settings,
        now=clock.now(),
        operator=admin.customer_id,
        dry_run=dry_run,
        partial=partial,
    )
    report = await run_import(read_lines(request.stream(), limits), run)
    if report.refused and not report.committed and not dry_run:
        raise Unprocessable(
            f"{report.refused} line(s) refused; nothing was imported. Fix them, or import "
            "the good lines with ?partial=true.",
            code="import_refused",
            extra={"report": report.model_dump(mode="json")},
        )
    return report
