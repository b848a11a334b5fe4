"""SEPA direct debit methods: registration, mandate acceptance, access to the IBAN.

The IBAN is sealed (AES-GCM) with the method id as associated data and found again through a
keyed fingerprint; only its masked form, country, bank code, BIC and last four are in clear.
Nothing here logs or raises with the IBAN in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.crypto import FieldCipher, Sealed
from app.core.errors import Conflict, Unprocessable
from app.core.ids import new_id
from app.payment_methods import mandate_texts, repository
from app.payment_methods.iban import check_iban, mask
from app.payment_methods.models import (
    Mandate,
    MandateStatus,
    PaymentMethod,
    PaymentMethodStatus,
    PaymentMethodType,
)
from app.payment_methods.sepa_rules import new_mandate_reference, to_sepa_text

IBAN_PURPOSE = "iban"
HOLDER_NAME_MAX = 70


@dataclass(frozen=True)
class Creditor:
    identifier: str
    name: str


@dataclass(frozen=True)
class Acceptance:
    accepted: bool
    signer_name: str
    text_sha256: str | None
    ip: str | None
    user_agent: str | None


def _field_error(field: str, message: str, error_type: str) -> list[dict[str, object]]:
    return [{"loc": ["body", "sepa_debit", field], "message": message, "type": error_type}]


def holder_name(value: str) -> str:
    """The account holder's name in the SEPA character set, or 422."""
    name, rejected = to_sepa_text(value)
    code = "invalid_account_holder_name"
    if rejected:
        detail = "The account holder name has characters banks cannot carry: " + "".join(
            sorted(rejected)
        )
    elif not name:
        detail = "The account holder name is required."
    elif len(name) > HOLDER_NAME_MAX:
        detail = f"The account holder name is longer than {HOLDER_NAME_MAX} characters."
    else:
        return name
    raise Unprocessable(
        detail, code=code, extra={"errors": _field_error("account_holder_name", detail, code)}
    )


def _valid_sepa_iban(value: str) -> tuple[str, dict[str, str | None]]:
    check = check_iban(value)
    if not check.valid or check.iban is None or check.country_code is None:
        detail = f"The IBAN is not valid ({check.reason})."
        raise Unprocessable(
            detail,
            code="invalid_iban",
            extra={"reason": check.reason, "errors": _field_error("iban", detail, "invalid_iban")},
        )
    if not check.sepa:
        detail = f"Accounts in {check.country_code} cannot be debited through SEPA."
        raise Unprocessable(
            detail,
            code="iban_not_sepa",
            extra={"errors": _field_error("iban", detail, "iban_not_sepa")},
        )
    return check.iban, {
        "country": check.country_code,
        "bank_code": check.bank_code,
        "bic": check.bic,
        "bank_name": check.bank_name[:200] if check.bank_name else None,
    }


async def _fresh_reference(session: AsyncSession) -> str:
    for _ in range(5):
        reference = new_mandate_reference()
        if not await repository.mandate_reference_taken(session, reference):
            return reference
    raise RuntimeError("could not draw an unused mandate reference")  # ~never: 32**20 space


@dataclass(frozen=True)
class SealedAccount:
    """A bank account checked as at registration and sealed at once for the method
    `method_id` (the IBAN is the associated data's owner): nothing here is the clear IBAN."""

    method_id: str
    fingerprints: list[str]  # under the current key first, then under retired keys
    ciphertext: bytes
    key_id: str
    masked: str
    last4: str
    country: str
    bank_code: str | None
    bic: str | None
    bank_name: str | None
    holder_name: str


def seal_account(
    iban: str, account_holder_name: str, cipher: FieldCipher, *, method_id: str
) -> SealedAccount:
    """Check the IBAN (SEPA reachable) and the holder's name, or 422; seal the IBAN."""
    electronic, bank = _valid_sepa_iban(iban)
    name = holder_name(account_holder_name)
    sealed = cipher.seal(electronic, associated_data=method_id.encode())
    return SealedAccount(
        method_id=method_id,
        fingerprints=cipher.fingerprints(electronic, purpose=IBAN_PURPOSE),
        ciphertext=sealed.data,
        key_id=sealed.key_id,
        masked=mask(electronic),
        last4=electronic[-4:],
        country=bank["country"] or "",
        bank_code=bank["bank_code"],
        bic=bank["bic"],
        bank_name=bank["bank_name"],
        holder_name=name,
    )


def new_method(customer_id: str, account: SealedAccount, now: datetime) -> PaymentMethod:
    """The SEPA method of `account`, waiting for its mandate (not added to the session)."""
    return PaymentMethod(
        id=account.method_id,
        customer_id=customer_id,
        type=PaymentMethodType.SEPA_DEBIT,
        status=PaymentMethodStatus.REQUIRES_ACTION,
        is_default=False,
        created_at=now,
        updated_at=now,
        iban_ciphertext=account.ciphertext,
        iban_key_id=account.key_id,
        iban_fingerprint=account.fingerprints[0],
        iban_masked=account.masked,
        iban_last4=account.last4,
        iban_country=account.country,
        bank_code=account.bank_code,
        bic=account.bic,
        bank_name=account.bank_name,
        account_holder_name=account.holder_name,
    )


def new_mandate(
    customer_id: str,
    account: SealedAccount,
    *,
    reference: str,
    creditor: Creditor,
    now: datetime,
    text_version: str = mandate_texts.CURRENT_VERSION,
) -> Mandate:
    """A pending recurrent CORE mandate, FRST until its first collection."""
    text = mandate_texts.render(
        text_version,
        reference=reference,
        creditor_id=creditor.identifier,
        creditor_name=creditor.name,
        debtor_name=account.holder_name,
        iban_masked=account.masked,
    )
    return Mandate(
        id=new_id("mdt"),
        customer_id=customer_id,
        reference=reference,
        creditor_id=creditor.identifier,
        creditor_name=creditor.name,
        scheme="CORE",
        mandate_type="recurrent",
        sequence_type="FRST",
        status=MandateStatus.PENDING,
        debtor_name=account.holder_name,
        text_version=text.version,
        text_sha256=text.sha256,
        created_at=now,
    )


async def register(
    session: AsyncSession,
    *,
    customer_id: str,
    iban: str,
    account_holder_name: str,
    cipher: FieldCipher,
    creditor: Creditor,
    now: datetime,
) -> PaymentMethod:
    """A new SEPA method in `requires_action`, with its mandate waiting for acceptance."""
    account = seal_account(iban, account_holder_name, cipher, method_id=new_id("pm"))
    await _refuse_duplicate(session, customer_id, account.fingerprints)
    method = new_method(customer_id, account, now)
    method.mandate = new_mandate(
        customer_id,
        account,
        reference=await _fresh_reference(session),
        creditor=creditor,
        now=now,
    )
    session.add(method)
    try:
        await session.flush()
    except IntegrityError as exc:
        # A concurrent registration of the same account won the unique index. (No savepoint
        # to look it up: SQLite's driver would commit one on release.)
        raise Conflict(
            "This bank account was just registered by another request.",
            code="duplicate_payment_method",
        ) from exc
    return method


async def _refuse_duplicate(
    session: AsyncSession, customer_id: str, fingerprints: list[str]
) -> None:
    existing = await repository.find_live_by_fingerprint(session, customer_id, fingerprints)
    if existing is not None:
        raise Conflict(
            "This bank account is already registered.",
            code="duplicate_payment_method",
            extra={"payment_method_id": existing.id},
        )


def mandate_text(mandate: Mandate, method: PaymentMethod) -> mandate_texts.MandateText:
    """The mandate text exactly as it was shown (rendered from the mandate's own copy)."""
    return mandate_texts.render(
        mandate.text_version,
        reference=mandate.reference,
        creditor_id=mandate.creditor_id,
        creditor_name=mandate.creditor_name,
        debtor_name=mandate.debtor_name,
        iban_masked=method.iban_masked or "",
    )


def accept_mandate(
    method: PaymentMethod,
    acceptance: Acceptance,
    now: datetime,
    *,
    signed_at: datetime | None = None,
) -> None:
    """Record the debtor's acceptance and make the method usable. `signed_at`: when it was
    signed, if not now (a mandate imported from the previous panel keeps its date)."""
    mandate = method.mandate
    assert mandate is not None
    if not acceptance.accepted:
        raise Unprocessable(
            "The mandate must be accepted to validate the method.", code="mandate_not_accepted"
        )
    if acceptance.text_sha256 is not None and acceptance.text_sha256 != mandate.text_sha256:
        raise Conflict(
            "The mandate text changed since it was shown; show it again.",
            code="mandate_text_changed",
        )
    signer = " ".join(acceptance.signer_name.split())
    if not signer:
        raise Unprocessable("The signer's name is required.", code="signer_name_required")
    mandate.status = MandateStatus.ACTIVE
    mandate.signer_name = signer
    mandate.signed_at = signed_at or now
    mandate.signer_ip = acceptance.ip
    mandate.signer_user_agent = (acceptance.user_agent or "")[:512] or None
    method.status = PaymentMethodStatus.VALIDATED
    method.validated_at = now
    method.updated_at = now


def revoke_mandate(method: PaymentMethod, now: datetime) -> None:
    mandate = method.mandate
    if mandate is not None and mandate.status != MandateStatus.REVOKED:
        mandate.status = MandateStatus.REVOKED
        mandate.revoked_at = now


def reveal_iban(method: PaymentMethod, cipher: FieldCipher) -> str:
    """The clear IBAN, for the pain.008 file only. Never log or return it."""
    if method.iban_ciphertext is None or method.iban_key_id is None:
        raise ValueError(f"payment method {method.id} has no IBAN")
    sealed = Sealed(method.iban_key_id, method.iban_ciphertext)
    return cipher.open(sealed, associated_data=method.id.encode())
