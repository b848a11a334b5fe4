"""The SEPA Core mandate text shown to the debtor, in Spanish and English, versioned.

A published version is never edited: a new wording is a new version, so the hash stored
with each mandate always identifies the exact text its signer saw. The wording follows the
mandatory text of the SEPA Core rulebook (authorisation, refund right, 8 weeks).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

CURRENT_VERSION = "2026-11-v1"
# Not a wording anyone signed here: the record kept for a mandate signed through the previous
# customer panel (app/imports), which keeps the form its debtor saw. Its hash identifies this
# record, so the mandate view never claims the debtor accepted our text.
IMPORTED_VERSION = "imported-v1"

_TEXTS: dict[str, dict[str, str]] = {
    "2026-11-v1": {
        "es": (
            "Orden de domiciliación de adeudo directo SEPA (Core), pago recurrente.\n"
            "Referencia de la orden de domiciliación: {reference}\n"
            "Identificador del acreedor: {creditor_id}\n"
            "Nombre del acreedor: {creditor_name}\n"
            "Titular de la cuenta (deudor): {debtor_name}\n"
            "Cuenta de adeudo: {iban_masked}\n\n"
            "Mediante la aceptación de la presente orden de domiciliación, el deudor autoriza "
            "(A) al acreedor a enviar instrucciones a la entidad del deudor para adeudar su "
            "cuenta y (B) a la entidad para efectuar los adeudos en su cuenta siguiendo las "
            "instrucciones del acreedor. Como parte de sus derechos, el deudor está legitimado "
            "al reembolso por su entidad en los términos y condiciones del contrato suscrito "
            "con la misma. La solicitud de reembolso deberá efectuarse dentro de las ocho "
            "semanas que siguen a la fecha de adeudo en cuenta. Puede obtener información "
            "adicional sobre sus derechos en su entidad financiera."
        ),
        "en": (
            "SEPA Core Direct Debit Mandate, recurrent payment.\n"
            "Mandate reference: {reference}\n"
            "Creditor identifier: {creditor_id}\n"
            "Creditor name: {creditor_name}\n"
            "Account holder (debtor): {debtor_name}\n"
            "Account to debit: {iban_masked}\n\n"
            "By accepting this mandate form, you authorise (A) the creditor to send "
            "instructions to your bank to debit your account and (B) your bank to debit your "
            "account in accordance with the instructions from the creditor. As part of your "
            "rights, you are entitled to a refund from your bank under the terms and "
            "conditions of your agreement with your bank. A refund must be claimed within "
            "8 weeks starting from the date on which your account was debited. Your rights "
            "are explained in a statement that you can obtain from your bank."
        ),
    },
    IMPORTED_VERSION: {
        "es": (
            "Orden de domiciliación de adeudo directo SEPA (Core), pago recurrente, firmada "
            "en el área de cliente anterior y traída a este servicio sin cambios.\n"
            "Referencia de la orden de domiciliación: {reference}\n"
            "Identificador del acreedor: {creditor_id}\n"
            "Nombre del acreedor: {creditor_name}\n"
            "Titular de la cuenta (deudor): {debtor_name}\n"
            "Cuenta de adeudo: {iban_masked}\n\n"
            "El texto que firmó el deudor se conserva con los registros del área de cliente "
            "anterior."
        ),
        "en": (
            "SEPA Core Direct Debit Mandate, recurrent payment, signed through the previous "
            "customer panel and brought into this service unchanged.\n"
            "Mandate reference: {reference}\n"
            "Creditor identifier: {creditor_id}\n"
            "Creditor name: {creditor_name}\n"
            "Account holder (debtor): {debtor_name}\n"
            "Account to debit: {iban_masked}\n\n"
            "The text the debtor signed is kept with the records of the previous customer "
            "panel."
        ),
    },
}


@dataclass(frozen=True)
class MandateText:
    version: str
    texts: dict[str, str]  # language → text
    sha256: str


def render(
    version: str,
    *,
    reference: str,
    creditor_id: str,
    creditor_name: str,
    debtor_name: str,
    iban_masked: str,
) -> MandateText:
    """The text of `version` filled in, and its hash (over both languages, canonically)."""
    fields = {
        "reference": reference,
        "creditor_id": creditor_id,
        "creditor_name": creditor_name,
        "debtor_name": debtor_name,
        "iban_masked": iban_masked,
    }
    texts = {language: text.format(**fields) for language, text in _TEXTS[version].items()}
    canonical = json.dumps({"version": version, "texts": texts}, sort_keys=True)
    return MandateText(version, texts, hashlib.sha256(canonical.encode()).hexdigest())
