"""HTTP for SEPA collections (admin): batches and their files, submission, returns."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Response

from app.core.clock import CalendarDay
from app.core.deps import AdminDep, ClockDep, SessionDep, SettingsDep
from app.core.errors import UnsupportedMedia, problem_responses
from app.core.idempotency import IdempotencyDep
from app.core.pagination import Page, PageDep, paginate
from app.payment_methods.routes import CipherDep
from app.sepa import batches, repository
from app.sepa.models import SepaBatch, SepaCollection, SepaReturnFile
from app.sepa.return_import import import_returns
from app.sepa.schemas import BatchCreate, BatchOut, CollectionOut, ReturnFileOut

router = APIRouter(prefix="/v1/admin/sepa", tags=["sepa (admin)"])

BatchId = Annotated[str, Path(max_length=64, description="A SEPA batch id (`sepab_…`).")]
BatchStatus = Literal["created", "submitted", "settled"]
CollectionStatus = Literal["pending", "batched", "submitted", "settled", "returned", "canceled"]
# The bank's report as it comes: XML (pain.002, camt.054) or CSV. The format is read from
# the content, so bytes without a more precise type are read too (and are what generated
# clients send); anything else, JSON or a form above all, is not a return file.
RETURN_FILE_MEDIA_TYPES = ("application/xml", "text/xml", "text/csv", "application/octet-stream")
RETURN_FILE_TYPES = ", ".join(RETURN_FILE_MEDIA_TYPES)


@router.post(
    "/batches",
    response_model=BatchOut,
    status_code=201,
    summary="Gather a collection date's direct debits into a pain.008 file",
    responses=problem_responses(400, 401, 403, 422),
)
async def create_batch(
    body: BatchCreate,
    session: SessionDep,
    _admin: AdminDep,
    clock: ClockDep,
    settings: SettingsDep,
    cipher: CipherDep,
    idempotency: IdempotencyDep,
) -> Response:
    async def create() -> BatchOut:
        batch, included = await batches.create_batch(
            session,
            collection_date=body.collection_date,
            schema=body.schema_,
            settings=settings,
            cipher=cipher,
            now=clock.now(),
        )
        return BatchOut.of(batch, included)

    return await idempotency.respond(201, create)


@router.get("/batches", response_model=Page[BatchOut], responses=problem_responses(400, 401, 403))
async def list_batches(
    session: SessionDep,
    _admin: AdminDep,
    page: PageDep,
    status: BatchStatus | None = None,
    collection_date: CalendarDay | None = None,
) -> Page[BatchOut]:
    query = repository.batches_query(status=status, collection_date=collection_date)
    rows, next_cursor = await paginate(
        session, query, page, created_at=SepaBatch.created_at, row_id=SepaBatch.id
    )
    return Page(data=[BatchOut.of(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/batches/{batch_id}", response_model=BatchOut, responses=problem_responses(401, 403, 404)
)
async def get_batch(batch_id: BatchId, session: SessionDep, _admin: AdminDep) -> BatchOut:
    batch = await batches.get(session, batch_id)
    return BatchOut.of(batch, await repository.of_batch(session, batch.id))


FILE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The pain.008 file, byte for byte as validated and stored.",
        "content": {"application/xml": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.get(
    "/batches/{batch_id}/file",
    response_class=Response,
    summary="Download the pain.008 file",
    responses={**FILE_RESPONSE, **problem_responses(401, 403, 404)},
)
async def download_batch_file(
    batch_id: BatchId, session: SessionDep, _admin: AdminDep, cipher: CipherDep
) -> Response:
    batch = await batches.get(session, batch_id)
    return Response(
        batches.file_of(batch, cipher),
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="{batch.message_id}.xml"'},
    )


@router.post(
    "/batches/{batch_id}/submit",
    response_model=BatchOut,
    summary="Record that the file was sent to the bank: its renewals count as collected",
    responses=problem_responses(401, 403, 404, 409),
)
async def submit_batch(
    batch_id: BatchId, session: SessionDep, _admin: AdminDep, clock: ClockDep
) -> BatchOut:
    batch, collections = await batches.submit_batch(session, batch_id, now=clock.now())
    return BatchOut.of(batch, collections)


@router.get(
    "/collections",
    response_model=Page[CollectionOut],
    summary="Pre-notified direct debits and what became of them",
    responses=problem_responses(400, 401, 403),
)
async def list_collections(
    session: SessionDep,
    _admin: AdminDep,
    page: PageDep,
    status: CollectionStatus | None = None,
    collection_date: CalendarDay | None = None,
    renewal_id: str | None = None,
    batch_id: str | None = None,
) -> Page[CollectionOut]:
    query = repository.collections_query(
        status=status, collection_date=collection_date, renewal_id=renewal_id, batch_id=batch_id
    )
    rows, next_cursor = await paginate(
        session, query, page, created_at=SepaCollection.created_at, row_id=SepaCollection.id
    )
    return Page(data=[CollectionOut.of(row) for row in rows], next_cursor=next_cursor)


@router.post(
    "/returns",
    response_model=ReturnFileOut,
    status_code=201,
    summary="Import the bank's returns and rejects (pain.002, camt.054 or CSV)",
    description=(
        f"The raw file as the body ({RETURN_FILE_TYPES}; the format is recognised from the "
        "content). A malformed file is refused whole (422 naming the line or element). "
        "The same file again answers 200 with the first import and changes nothing."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in RETURN_FILE_MEDIA_TYPES
            },
        }
    },
    responses={
        200: {"model": ReturnFileOut, "description": "Imported before; nothing changed."},
        **problem_responses(400, 401, 403, 409, 413, 415, 422),
    },
)
async def import_return_file(
    request: Request,
    response: Response,
    session: SessionDep,
    _admin: AdminDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> ReturnFileOut:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in RETURN_FILE_MEDIA_TYPES:
        raise UnsupportedMedia(
            f"Send the return file as {RETURN_FILE_TYPES}, not {media_type or 'no type'}.",
            extra={"accepted": list(RETURN_FILE_MEDIA_TYPES)},
        )
    result = await import_returns(session, await request.body(), settings=settings, now=clock.now())
    if result.replayed:
        response.status_code = 200
    return ReturnFileOut.of(result.file, result.returns, replayed=result.replayed)


@router.get(
    "/returns",
    response_model=Page[ReturnFileOut],
    summary="Imported return files",
    responses=problem_responses(400, 401, 403),
)
async def list_return_files(
    session: SessionDep, _admin: AdminDep, page: PageDep
) -> Page[ReturnFileOut]:
    rows, next_cursor = await paginate(
        session,
        repository.return_files_query(),
        page,
        created_at=SepaReturnFile.created_at,
        row_id=SepaReturnFile.id,
    )
    return Page(data=[ReturnFileOut.of(row) for row in rows], next_cursor=next_cursor)
