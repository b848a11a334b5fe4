"""One error tree, one renderer: RFC 9457 problem documents with a stable `code`.

    AppError                      any failure the caller can act on (status + code)
    ├── BadRequest          400
    ├── Unauthorized        401   no token, or a bad one (adds WWW-Authenticate)
    ├── PaymentRequired     402   the gateway refused money (card_declined, …)
    ├── Forbidden           403
    ├── NotFound            404   also: someone else's resource
    ├── Conflict            409   the request fights the resource's state
    ├── PreconditionFailed  412   If-Match names a version that is not the current one
    ├── PayloadTooLarge     413
    ├── UnsupportedMedia    415
    ├── Unprocessable       422   well-formed but invalid (invalid_iban, …)
    ├── TooManyRequests     429
    └── ServiceUnavailable  503

Services raise these; they never raise HTTPException. `install_error_handlers` renders them,
and also FastAPI's own validation errors, Starlette's HTTP errors and anything unexpected
(500 with the request id and nothing internal).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://autorenew.dev/problems/"

log = logging.getLogger("autorenew.errors")


class AppError(Exception):
    status: ClassVar[int] = 400
    default_code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})


class BadRequest(AppError):
    status = 400
    default_code = "bad_request"


class Unauthorized(AppError):
    status = 401
    default_code = "unauthorized"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail, code=code, headers={"WWW-Authenticate": "Bearer"})


class PaymentRequired(AppError):
    status = 402
    default_code = "payment_failed"


class Forbidden(AppError):
    status = 403
    default_code = "forbidden"


class NotFound(AppError):
    status = 404
    default_code = "not_found"


class Conflict(AppError):
    status = 409
    default_code = "conflict"


class PreconditionFailed(AppError):
    status = 412
    default_code = "precondition_failed"


class PayloadTooLarge(AppError):
    status = 413
    default_code = "payload_too_large"


class UnsupportedMedia(AppError):
    status = 415
    default_code = "unsupported_media_type"


class Unprocessable(AppError):
    status = 422
    default_code = "validation_error"


class TooManyRequests(AppError):
    status = 429
    default_code = "rate_limited"


class ServiceUnavailable(AppError):
    status = 503
    default_code = "service_unavailable"


# Codes used for errors that do not come from a domain service.
_HTTP_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    detail: str,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    # An extra member never replaces one of RFC 9457's: clients type `status` as the HTTP code.
    body: dict[str, Any] = dict(extra or {})
    body |= {
        "type": PROBLEM_TYPE_BASE + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.url.path,
    }
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    fields = []
    for error in errors:
        fields.append(
            {
                "loc": [str(part) for part in error.get("loc", ())],
                "message": error.get("msg", "invalid"),
                "type": error.get("type", "invalid"),
            }
        )
    return fields


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        detail=exc.detail,
        extra=exc.extra,
        headers=exc.headers,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(error.get("type") == "json_invalid" for error in errors):
        return problem_response(
            request, status=400, code="malformed_json", detail="The body is not valid JSON."
        )
    return problem_response(
        request,
        status=422,
        code="validation_error",
        detail="Some fields are missing or invalid.",
        extra={"errors": _field_errors(errors)},
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).description
    headers = dict(getattr(exc, "headers", None) or {})
    if status == 404 and detail == "Not Found":
        detail = "No such route."
    if status == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return problem_response(
        request,
        status=status,
        code=_HTTP_STATUS_CODES.get(status, f"http_{status}"),
        detail=detail,
        headers=headers,
    )


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path. Starlette names only the first route
    that matched the path, but FastAPI makes one route per method (GET and PATCH apart)."""
    routes = request.app.router.routes
    return [
        method
        for method in ("DELETE", "GET", "PATCH", "POST", "PUT")
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


def unexpected_error_response(request: Request, exc: BaseException) -> JSONResponse:
    """The 500 for a bug: logged with its traceback, answered with only the request id.

    Called by the edge middleware (app/core/http.py), which sits inside Starlette's
    last-resort handler so that this answer still carries the X-Request-ID header.
    """
    log.error(
        "unhandled error",
        exc_info=(type(exc), exc, exc.__traceback__),
        extra={"request_id": getattr(request.state, "request_id", None)},
    )
    return problem_response(
        request,
        status=500,
        code="internal_error",
        detail="Something went wrong on our side. Quote the request id when reporting it.",
    )


# Answers no route writes itself, so routes list only their own: the validation handler
# above (422 for bad parameters or fields; 400 for a body that is not JSON at all) and the
# edge (app/core/http.py: 413 over the size limit, 415 for a body that is not JSON).
_PARAMETER_PROBLEMS = ("422",)
_BODY_PROBLEMS = ("400", "413", "415", "422")
_PROBLEM_SCHEMA = {"$ref": "#/components/schemas/ProblemDocument"}
# FastAPI's own description of its 422, replaced by ours: we never send that shape.
_FASTAPI_VALIDATION = {"$ref": "#/components/schemas/HTTPValidationError"}


def _is_problem(response: dict[str, Any]) -> bool:
    content = response.get("content", {})
    return PROBLEM_JSON in content or (
        content.get("application/json", {}).get("schema") == _FASTAPI_VALIDATION
    )


def _document_problems(document: dict[str, Any]) -> None:
    """Describe every problem body under `application/problem+json`, the type it is sent as,
    and add the problems the framework and the edge answer on the route's behalf.

    FastAPI puts a response `model` under the route's own media type (application/json) and
    documents its 422 in a shape we never send; left so, clients find no schema for our errors.
    """
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            framework: tuple[str, ...] = ()
            if "requestBody" in operation:
                framework = _BODY_PROBLEMS
            elif operation.get("parameters"):
                framework = _PARAMETER_PROBLEMS
            for status in framework:
                responses.setdefault(status, {"description": HTTPStatus(int(status)).phrase})
            for status, response in responses.items():
                if _is_problem(response) or status in framework:
                    response["content"] = {PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA}}
            operation["responses"] = dict(sorted(responses.items()))
    schemas = document.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        reference = f'"#/components/schemas/{unused}"'
        if unused in schemas and reference not in json.dumps(document):
            del schemas[unused]


def _install_problem_documentation(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _document_problems(build())
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    _install_problem_documentation(app)


class FieldError(BaseModel):
    loc: list[str]
    message: str
    type: str


class ProblemDocument(BaseModel):
    """RFC 9457 problem details, as every error of this API is rendered."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable, machine-readable error code.")
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = Field(
        default=None, description="For invalid input: each failing field and where it is."
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the problem documents a route can answer."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "model": ProblemDocument,
            "content": {PROBLEM_JSON: {}},
        }
        for status in statuses
    }
