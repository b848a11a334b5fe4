"""Tagged unions whose validation errors point at the field that is wrong.

Pydantic validates `Annotated[A | B, Field(discriminator="type")]` by the tag and puts the
tag's value into every error's location, so a missing field of a SEPA body is reported at
`["body", "sepa_debit", "sepa_debit", "account_holder_name"]` and an unknown top-level
field of a card body under `["body", "card", …]`: places that do not exist in the request.
Pydantic has no setting to leave the tag out, so `TaggedUnion` validates the chosen member
itself (its errors keep the member's own locations) and reports a missing or unknown tag at
the discriminator field. The JSON schema is still the discriminated union (`oneOf` with a
`discriminator` mapping), which client generators turn into one class per member.

    PaymentMethodCreate = Annotated[SepaDebitCreate | CardCreate, TaggedUnion("type")]

(A `Field(discriminator=…)` next to a validator would not do: FastAPI moves field
attributes after the other annotations, so the tag would be read first again.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, get_args

from pydantic import (
    BaseModel,
    Discriminator,
    GetCoreSchemaHandler,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
)
from pydantic_core import CoreSchema, InitErrorDetails, core_schema


def _tags(member: Any, discriminator: str) -> tuple[str, ...]:
    if not (isinstance(member, type) and issubclass(member, BaseModel)):
        raise TypeError(f"TaggedUnion members must be models, not {member!r}")
    tags = get_args(member.model_fields[discriminator].annotation)
    if not tags or not all(isinstance(tag, str) for tag in tags):
        raise TypeError(f"{member.__name__}.{discriminator} must be a Literal of strings")
    return tags


@dataclass(frozen=True)
class TaggedUnion:
    discriminator: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        adapters: dict[str, TypeAdapter[Any]] = {
            tag: TypeAdapter(member)
            for member in get_args(source)
            for tag in _tags(member, self.discriminator)
        }
        tagged = handler.generate_schema(Annotated[source, Discriminator(self.discriminator)])
        return core_schema.no_info_wrap_validator_function(self._by_tag(adapters), tagged)

    def _by_tag(self, adapters: dict[str, TypeAdapter[Any]]) -> Any:
        field = self.discriminator
        expected = ", ".join(repr(tag) for tag in adapters)

        def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
            if not isinstance(value, dict):
                return handler(value)  # pydantic's own "not an object" error
            tag = value.get(field)
            if isinstance(tag, str) and tag in adapters:
                # Raised inside a validator, a ValidationError keeps its errors' locations.
                return adapters[tag].validate_python(value)
            error: InitErrorDetails
            if field not in value:
                error = {"type": "missing", "loc": (field,), "input": value}
            else:
                # pydantic-core hands ctx to Rust, which refuses a lone surrogate in a string.
                shown = str(tag).encode("utf-8", "backslashreplace").decode("utf-8")
                error = {
                    "type": "union_tag_invalid",
                    "loc": (field,),
                    "input": shown,
                    "ctx": {
                        "discriminator": repr(field),
                        "tag": shown,
                        "expected_tags": expected,
                    },
                }
            raise ValidationError.from_exception_data("TaggedUnion", [error])

        return validate
