from __future__ import annotations

import dataclasses
import importlib.resources
import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import xmlschema
from lxml import etree

from app.core.errors import Unprocessable
from app.sepa.pain008 import (
    DEFAULT_SCHEMA,
    Collection,
    Creditor,
    Pain008Schema,
    build_pain008,
    validate_pain008,
)
from app.sepa.sequence import SequenceType

CREATED = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
CREDITOR = Creditor(
    name="Hostéo & Söhne GmbH",
    iban="DE89 3704 0044 0532 0130 00",
    bic="COBADEFFXXX",
    creditor_id="DE98ZZZ09999999999",
)


def collection(number: int, **changes: object) -> Collection:
    base = Collection(
        end_to_end_id=f"ren-{number:04d}",
        amount_cents=1299,
        currency="EUR",
        debtor_name="Jörg Müller",
        debtor_iban="FR14 2004 1010 0505 0001 3M02 606",
        debtor_bic="PSSTFRPPLIL",
        mandate_reference=f"MNDT-{number:04d}",
        mandate_signed_on=date(2026, 1, 15),
        sequence_type=SequenceType.RECURRING,
        collection_date=date(2026, 12, 8),
        remittance_text=f"Renewal of example-{number}.org",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def official_schemas() -> dict[Pain008Schema, xmlschema.XMLSchema]:
    # The ISO 20022 XSDs as shipped in the sepaxml wheel, loaded by a second validator
    # (xmlschema) so that the tests do not trust the code under test to validate itself.
    schemas = {}
    for schema in Pain008Schema:
        path = importlib.resources.files("sepaxml") / "schemas" / f"{schema.value}.xsd"
        schemas[schema] = xmlschema.XMLSchema(str(path))
    return schemas


def tree(content: bytes, schema: Pain008Schema) -> tuple[etree._Element, dict[str, str]]:
    return etree.fromstring(content), {"p": f"urn:iso:std:iso:20022:tech:xsd:{schema.value}"}


MIXED = [
    collection(1, amount_cents=1299, sequence_type=SequenceType.FIRST),
    collection(2, amount_cents=100000, collection_date=date(2026, 12, 9)),
    collection(3, amount_cents=1),
    collection(4, amount_cents=99_999_999_999, debtor_bic=None),
    collection(5, amount_cents=250, sequence_type=SequenceType.FIRST),
]


@pytest.mark.parametrize("schema", list(Pain008Schema))
def test_file_validates_against_the_official_xsd(
    schema: Pain008Schema, official_schemas: dict[Pain008Schema, xmlschema.XMLSchema]
) -> None:
    result = build_pain008(CREDITOR, MIXED, created_at=CREATED, schema=schema)
    official_schemas[schema].validate(result.content)  # raises when invalid
    assert validate_pain008(result.content, schema) == []
    root, _ = tree(result.content, schema)
    assert etree.QName(root).namespace == f"urn:iso:std:iso:20022:tech:xsd:{schema.value}"
    assert result.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')


def test_the_default_schema_is_the_2019_version() -> None:
    assert DEFAULT_SCHEMA == "pain.008.001.08"
    result = build_pain008(CREDITOR, [collection(1)], created_at=CREATED)
    assert b"urn:iso:std:iso:20022:tech:xsd:pain.008.001.08" in result.content
    assert b"<BICFI>COBADEFFXXX</BICFI>" in result.content


@pytest.mark.parametrize("schema", list(Pain008Schema))
def test_control_sums_counts_and_two_decimal_amounts(schema: Pain008Schema) -> None:
    result = build_pain008(CREDITOR, MIXED, created_at=CREATED, schema=schema)
    expected = sum(c.amount_cents for c in MIXED)
    assert result.control_sum_cents == expected
    assert result.number_of_transactions == 5
    root, ns = tree(result.content, schema)
    assert root.findtext("p:CstmrDrctDbtInitn/p:GrpHdr/p:NbOfTxs", namespaces=ns) == "5"
    header_sum = root.findtext("p:CstmrDrctDbtInitn/p:GrpHdr/p:CtrlSum", namespaces=ns)
    assert header_sum == "1000001015.49"
    assert Decimal(header_sum) * 100 == expected
    amounts = [a.text for a in root.iterfind(".//p:InstdAmt", ns)]
    assert all(re.fullmatch(r"\d+\.\d{2}", a or "") for a in amounts)
    assert sorted(amounts, key=Decimal) == ["0.01", "2.50", "12.99", "1000.00", "999999999.99"]
    for block in root.iterfind(".//p:PmtInf", ns):
        in_block = [Decimal(a.text or "") for a in block.iterfind(".//p:InstdAmt", ns)]
        assert Decimal(block.findtext("p:CtrlSum", namespaces=ns) or "") == sum(in_block)
        assert block.findtext("p:NbOfTxs", namespaces=ns) == str(len(in_block))
    assert [g.control_sum_cents for g in result.groups] == [1549, 99_999_999_999 + 1, 100000]


def test_grouped_per_collection_date_and_sequence_type() -> None:
    result = build_pain008(CREDITOR, MIXED, created_at=CREATED)
    root, ns = tree(result.content, Pain008Schema.V08)
    blocks = [
        (
            block.findtext("p:ReqdColltnDt", namespaces=ns),
            block.findtext("p:PmtTpInf/p:SeqTp", namespaces=ns),
            [e.text for e in block.iterfind(".//p:EndToEndId", ns)],
            block.findtext("p:PmtInfId", namespaces=ns),
        )
        for block in root.iterfind(".//p:PmtInf", ns)
    ]
    mid = result.message_id
    assert blocks == [
        ("2026-12-08", "FRST", ["ren-0001", "ren-0005"], f"{mid}-1"),
        ("2026-12-08", "RCUR", ["ren-0003", "ren-0004"], f"{mid}-2"),
        ("2026-12-09", "RCUR", ["ren-0002"], f"{mid}-3"),
    ]
    assert [(g.collection_date, g.sequence_type, g.end_to_end_ids) for g in result.groups] == [
        (date(2026, 12, 8), SequenceType.FIRST, ("ren-0001", "ren-0005")),
        (date(2026, 12, 8), SequenceType.RECURRING, ("ren-0003", "ren-0004")),
        (date(2026, 12, 9), SequenceType.RECURRING, ("ren-0002",)),
    ]


def test_output_does_not_depend_on_input_order() -> None:
    first = build_pain008(CREDITOR, MIXED, created_at=CREATED, message_id="BATCH-1")
    again = build_pain008(CREDITOR, MIXED[::-1], created_at=CREATED, message_id="BATCH-1")
    assert first.content == again.content


def test_header_carries_our_message_id_and_clock_time() -> None:
    result = build_pain008(CREDITOR, [collection(1)], created_at=CREATED, message_id="SEPA-42")
    root, ns = tree(result.content, Pain008Schema.V08)
    assert result.message_id == "SEPA-42"
    assert root.findtext(".//p:GrpHdr/p:MsgId", namespaces=ns) == "SEPA-42"
    assert root.findtext(".//p:GrpHdr/p:CreDtTm", namespaces=ns) == "2026-11-24T09:00:00"
    generated = build_pain008(CREDITOR, [collection(1)], created_at=CREATED).message_id
    assert re.fullmatch(r"AR20261124090000[0-9A-F]{12}", generated)


def test_names_and_text_are_converted_to_the_sepa_character_set() -> None:
    item = collection(
        1,
        debtor_name="Zoë Ørsted-Łukasz & Co_KG <Straße> #1",
        remittance_text="Verlängerung «example.org» \u2013 12 € @ 100%",
    )
    result = build_pain008(CREDITOR, [item], created_at=CREATED)
    root, ns = tree(result.content, Pain008Schema.V08)
    assert root.findtext(".//p:Dbtr/p:Nm", namespaces=ns) == "Zoe Orsted-Lukasz + Co-KG Strasse 1"
    assert root.findtext(".//p:Cdtr/p:Nm", namespaces=ns) == "Hosteo + Soehne GmbH"
    text = root.findtext(".//p:RmtInf/p:Ustrd", namespaces=ns)
    assert text == "Verlaengerung example.org - 12 EUR 100"
    allowed = re.compile(r"[A-Za-z0-9/\-?:().,'+ ]*")
    for element in root.iter():
        assert allowed.fullmatch(element.text or ""), element.text


def test_long_names_are_cut_to_the_epc_lengths() -> None:
    item = collection(1, debtor_name="N" * 100, remittance_text="R" * 300)
    root, ns = tree(build_pain008(CREDITOR, [item], created_at=CREATED).content, DEFAULT_SCHEMA)
    assert len(root.findtext(".//p:Dbtr/p:Nm", namespaces=ns) or "") == 70
    assert len(root.findtext(".//p:RmtInf/p:Ustrd", namespaces=ns) or "") == 140


def test_missing_debtor_bic_in_the_eea_is_not_provided() -> None:
    item = collection(1, debtor_bic=None)
    for schema in Pain008Schema:
        content = build_pain008(CREDITOR, [item], created_at=CREATED, schema=schema).content
        assert b"<DbtrAgt><FinInstnId><Othr><Id>NOTPROVIDED</Id>" in content


def test_pain_08_without_creditor_bic() -> None:
    creditor = dataclasses.replace(CREDITOR, bic=None)
    result = build_pain008(creditor, [collection(1)], created_at=CREATED)
    assert b"<CdtrAgt><FinInstnId><Othr><Id>NOTPROVIDED</Id>" in result.content
    with pytest.raises(Unprocessable, match=r"pain\.008\.001\.02 needs the creditor's BIC"):
        build_pain008(creditor, [collection(1)], created_at=CREATED, schema=Pain008Schema.V02)


FRENCH = "FR14 2004 1010 0505 0001 3M02 606"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"end_to_end_id": "ren_0001"}, "may only contain"),
        ({"end_to_end_id": "x" * 36}, "1 to 35"),
        ({"end_to_end_id": "/ren-1"}, "must not start or end with '/'"),
        ({"mandate_reference": "M//1"}, "mandate reference"),
        ({"currency": "USD"}, "EUR only"),
        ({"amount_cents": 0}, "0.01 to 999999999.99"),
        ({"amount_cents": 100_000_000_000}, "0.01 to 999999999.99"),
        ({"collection_date": date(2026, 12, 25)}, "not a TARGET2 business day"),
        ({"mandate_signed_on": date(2026, 12, 9)}, "signed after"),
        ({"debtor_iban": FRENCH.replace("606", "607")}, "IBAN is not valid"),
        ({"debtor_bic": "NOTABIC"}, "BIC is not valid"),
        ({"debtor_iban": "CH93 0076 2011 6238 5295 7", "debtor_bic": None}, "outside the EEA"),
        ({"debtor_name": "   "}, "needs a name"),
    ],
)
def test_bad_collections_are_refused_by_end_to_end_id(
    changes: dict[str, object], message: str
) -> None:
    item = collection(7, **changes)
    with pytest.raises(Unprocessable) as caught:
        build_pain008(CREDITOR, [collection(1), item], created_at=CREATED)
    assert caught.value.code == "pain008_invalid"
    assert message in caught.value.detail
    # The debtor's IBAN never appears in an error.
    assert "2004" not in caught.value.detail and "FR14" not in caught.value.detail


def test_bad_creditor_and_file_level_problems() -> None:
    cases = [
        ({"creditor": dataclasses.replace(CREDITOR, creditor_id="DE97ZZZ09999999999")}, "check"),
        ({"creditor": dataclasses.replace(CREDITOR, iban="DE00")}, "IBAN is not valid"),
        ({"collections": []}, "at least one"),
        ({"collections": [collection(1), collection(1)]}, "more than once"),
        ({"message_id": "M" * 31}, "at most 30"),
        ({"message_id": "batch_1"}, "may only contain"),
    ]
    for overrides, message in cases:
        arguments: dict[str, object] = {"creditor": CREDITOR, "collections": [collection(1)]}
        arguments |= overrides
        with pytest.raises(Unprocessable) as caught:
            build_pain008(
                arguments["creditor"],  # type: ignore[arg-type]
                arguments["collections"],  # type: ignore[arg-type]
                created_at=CREATED,
                message_id=arguments.get("message_id"),  # type: ignore[arg-type]
            )
        assert caught.value.code == "pain008_invalid"
        assert message in caught.value.detail


def test_validator_reports_an_invalid_document() -> None:
    content = build_pain008(CREDITOR, [collection(1)], created_at=CREATED).content
    broken = content.replace(b"<SeqTp>RCUR</SeqTp>", b"<SeqTp>NOPE</SeqTp>")
    errors = validate_pain008(broken, Pain008Schema.V08)
    assert errors and "SeqTp" in errors[0]
    # A 2019 file is not a valid 2009 file.
    assert validate_pain008(content, Pain008Schema.V02)


def test_a_large_batch_stays_fast_and_exact() -> None:
    items = [
        collection(n, amount_cents=n * 7 + 1, sequence_type=SequenceType(("FRST", "RCUR")[n % 2]))
        for n in range(1, 1001)
    ]
    result = build_pain008(CREDITOR, items, created_at=CREATED)
    assert result.number_of_transactions == 1000
    assert result.control_sum_cents == sum(n * 7 + 1 for n in range(1, 1001))
    assert [g.number_of_transactions for g in result.groups] == [500, 500]
