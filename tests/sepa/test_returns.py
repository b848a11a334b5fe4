from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from app.core.errors import PayloadTooLarge, Unprocessable
from app.sepa.return_records import BatchRejection, ReturnAction, ReturnRecord, classify
from app.sepa.returns import parse_return_file

SAMPLES = Path(__file__).parent / "samples"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def rejected(data: bytes | str) -> Unprocessable:
    with pytest.raises(Unprocessable) as caught:
        parse_return_file(data.encode() if isinstance(data, str) else data)
    assert caught.value.code == "invalid_return_file"
    return caught.value


# --- pain.002 ---------------------------------------------------------------------------


def test_pain002_001_03_rejects_and_a_rejected_block() -> None:
    report = parse_return_file(sample("pain.002.001.03.xml"))
    assert report.format == "pain.002.001.03"
    message = "AR20261124090000ABCDEF012345"
    assert report.records == (
        ReturnRecord("ren-0001", "AM04", 1299, "EUR", date(2026, 12, 7), "pain.002", message),
        ReturnRecord("ren-0003", "MD01", 100000, "EUR", date(2026, 12, 7), "pain.002", message),
    )
    assert report.rejections == (
        BatchRejection(message, f"{message}-2", "FF01", date(2026, 12, 7)),
    )
    assert [r.action for r in report.records] == ["retry", "method_unusable"]


def test_pain002_001_10_inherits_the_block_status_and_reason() -> None:
    report = parse_return_file(sample("pain.002.001.10.xml"))
    assert report.format == "pain.002.001.10"
    assert report.records == (
        ReturnRecord("ren-0101", "AC04", None, None, date(2026, 12, 9), "pain.002", "SEPA-42"),
        ReturnRecord("ren-0102", "BANK-917", None, None, date(2026, 12, 9), "pain.002", "SEPA-42"),
    )
    assert report.rejections == ()
    assert report.records[1].action is ReturnAction.OTHER


def pain002(body: str, *, group: str = "", version: str = "03", kind: str = "pain.008") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.{version}"><CstmrPmtStsRpt>
<GrpHdr><MsgId>S1</MsgId><CreDtTm>2026-12-07T06:00:00</CreDtTm></GrpHdr>
<OrgnlGrpInfAndSts><OrgnlMsgId>M1</OrgnlMsgId><OrgnlMsgNmId>{kind}.001.08</OrgnlMsgNmId>
{group}</OrgnlGrpInfAndSts>
{body}
</CstmrPmtStsRpt></Document>"""


def test_pain002_whole_file_rejected() -> None:
    group = "<GrpSts>RJCT</GrpSts><StsRsnInf><Rsn><Cd>AM05</Cd></Rsn></StsRsnInf>"
    report = parse_return_file(pain002("", group=group).encode())
    assert report.records == ()
    assert report.rejections == (BatchRejection("M1", None, "AM05", date(2026, 12, 7)),)


def test_pain002_fully_accepted_is_empty() -> None:
    report = parse_return_file(pain002("", group="<GrpSts>ACCP</GrpSts>").encode())
    assert report.records == () and report.rejections == ()


def test_pain002_malformed_files_name_the_element() -> None:
    no_e2e = "<OrgnlPmtInfAndSts><OrgnlPmtInfId>P</OrgnlPmtInfId><TxInfAndSts><TxSts>RJCT</TxSts>"
    no_e2e += "<StsRsnInf><Rsn><Cd>AM04</Cd></Rsn></StsRsnInf></TxInfAndSts></OrgnlPmtInfAndSts>"
    error = rejected(pain002(no_e2e))
    assert "/Document/CstmrPmtStsRpt/OrgnlPmtInfAndSts/TxInfAndSts/OrgnlEndToEndId" in error.detail

    no_reason = "<OrgnlPmtInfAndSts><OrgnlPmtInfId>P</OrgnlPmtInfId>"
    no_reason += "<TxInfAndSts><OrgnlEndToEndId>ren-1</OrgnlEndToEndId><TxSts>RJCT</TxSts>"
    no_reason += "</TxInfAndSts></OrgnlPmtInfAndSts>"
    assert "StsRsnInf/Rsn/Cd is missing" in rejected(pain002(no_reason)).detail

    bad_amount = no_reason.replace(
        "</TxSts>",
        "</TxSts><StsRsnInf><Rsn><Cd>AM04</Cd></Rsn></StsRsnInf>"
        '<OrgnlTxRef><Amt><InstdAmt Ccy="EUR">12.999</InstdAmt></Amt></OrgnlTxRef>',
    )
    error = rejected(pain002(bad_amount))
    assert "TxInfAndSts/OrgnlTxRef/Amt/InstdAmt" in error.detail and "12.999" in error.detail

    two = "<TxInfAndSts><OrgnlEndToEndId>ren-1</OrgnlEndToEndId><TxSts>RJCT</TxSts>"
    two += "<StsRsnInf><Rsn><Cd>AM04</Cd></Rsn></StsRsnInf></TxInfAndSts>"
    twice = f"<OrgnlPmtInfAndSts><OrgnlPmtInfId>P</OrgnlPmtInfId>{two}{two}</OrgnlPmtInfAndSts>"
    assert "TxInfAndSts[2]: end-to-end id 'ren-1' appears twice" in rejected(pain002(twice)).detail

    assert "not about a direct-debit" in rejected(pain002("", kind="pain.001")).detail
    lowercase = two.replace("AM04", "am04")
    block = f"<OrgnlPmtInfAndSts><OrgnlPmtInfId>P</OrgnlPmtInfId>{lowercase}</OrgnlPmtInfAndSts>"
    assert "is not an ISO code" in rejected(pain002(block)).detail
    no_time = pain002("").replace("<CreDtTm>2026-12-07T06:00:00</CreDtTm>", "")
    assert "GrpHdr/CreDtTm is missing" in rejected(no_time).detail
    bad_time = pain002("").replace("2026-12-07T06:00:00", "yesterday")
    assert "'yesterday' is not an ISO date" in rejected(bad_time).detail


# --- camt.054 ---------------------------------------------------------------------------


def test_camt054_001_02_booked_returns_only() -> None:
    report = parse_return_file(sample("camt.054.001.02.xml"))
    assert report.format == "camt.054.001.02"
    assert report.records == (
        ReturnRecord("ren-0201", "AM04", 1299, "EUR", date(2026, 12, 11), "camt.054"),
        ReturnRecord("ren-0202", "MD06", 1300, "EUR", date(2026, 12, 11), "camt.054"),
    )
    assert [r.action for r in report.records] == ["retry", "refund"]


def test_camt054_001_08_amounts_dates_and_direction() -> None:
    report = parse_return_file(sample("camt.054.001.08.xml"))
    assert report.format == "camt.054.001.08"
    assert report.records == (
        ReturnRecord("ren-0301", "MS02", 4900, "EUR", date(2026, 12, 14), "camt.054"),
        ReturnRecord("ren-0302", "MD07", 750, "EUR", date(2026, 12, 15), "camt.054"),
    )
    assert all(r.action is ReturnAction.METHOD_UNUSABLE for r in report.records)


def test_camt054_malformed_files_name_the_element() -> None:
    good = sample("camt.054.001.08.xml").decode()
    no_e2e = good.replace("<EndToEndId>ren-0302</EndToEndId>", "")
    error = rejected(no_e2e)
    assert "/Document/BkToCstmrDbtCdtNtfctn/Ntfctn/Ntry[2]/NtryDtls/TxDtls/Refs" in error.detail
    assert "EndToEndId is missing" in error.detail
    assert "is not an amount" in rejected(good.replace(">49.00<", ">49,00<")).detail
    assert "positive amount" in rejected(good.replace(">7.50<", ">-7.50<")).detail
    assert "Ccy attribute" in rejected(good.replace('Ccy="EUR">7.50', ">7.50")).detail
    no_reason = good.replace("<Rsn><Cd>MD07</Cd></Rsn>", "")
    assert "RtrInf/Rsn/Cd is missing" in rejected(no_reason).detail
    no_date = good.replace("<BookgDt><Dt>2026-12-15</Dt></BookgDt>", "", 1)
    assert "Ntry[2]/BookgDt is missing" in rejected(no_date).detail
    no_amount = good.replace('<Amt Ccy="EUR">49.00</Amt>', "")
    assert "no amount for this return" in rejected(no_amount).detail
    no_notification = good.replace("<Ntfctn>", "<Other>").replace("</Ntfctn>", "</Other>")
    assert "Ntfctn is missing" in rejected(no_notification).detail


# --- any XML ----------------------------------------------------------------------------


def test_not_well_formed_xml_names_the_line() -> None:
    broken = sample("camt.054.001.02.xml").decode().replace("</Sts>", "</Status>", 1)
    assert "not well-formed XML (line 17" in rejected(broken).detail


def test_unknown_messages_are_refused() -> None:
    other = pain002("").replace("pain.002.001.03", "camt.053.001.02")
    assert "camt.053.001.02 is not a return report" in rejected(other).detail
    assert "root must be an ISO 20022" in rejected("<Document/>").detail
    assert "root must be" in rejected('<Report xmlns="urn:x"/>').detail
    wrong_root = pain002("").replace("CstmrPmtStsRpt", "Other")
    assert "CstmrPmtStsRpt is missing" in rejected(wrong_root).detail


def test_external_entities_are_never_resolved(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xxe = f"""<?xml version="1.0"?>
<!DOCTYPE Document [<!ENTITY leak SYSTEM "file://{secret}">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03">&leak;</Document>"""
    error = rejected(xxe)
    assert "document type declaration" in error.detail and "TOP-SECRET" not in error.detail


def test_entity_expansion_bombs_are_refused() -> None:
    entities = "".join(f'<!ENTITY e{n} "{f"&e{n - 1};" * 10 if n else "lol"}">' for n in range(10))
    bomb = f'<?xml version="1.0"?><!doctype Document [{entities}]><Document>&e9;</Document>'
    assert "document type declaration" in rejected(bomb).detail


def test_utf16_cannot_smuggle_a_doctype() -> None:
    xxe = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE d [<!ENTITY x "y">]><d>&x;</d>'
    assert "document type declaration" in rejected(xxe.encode("utf-16")).detail


def test_files_are_bounded_in_size() -> None:
    for name in ("camt.054.001.02.xml", "returns.csv"):
        with pytest.raises(PayloadTooLarge, match="at most 100 are accepted") as caught:
            parse_return_file(sample(name), max_bytes=100)
        assert caught.value.code == "file_too_large"


# --- CSV --------------------------------------------------------------------------------


def test_csv_returns() -> None:
    report = parse_return_file(sample("returns.csv"))
    assert report.format == "csv"
    assert report.records == (
        ReturnRecord("ren-0401", "AM04", 1299, "EUR", date(2026, 12, 10), "csv"),
        ReturnRecord("ren-0402", "MD01", 100000, "EUR", date(2026, 12, 11), "csv"),
        ReturnRecord("ren-0403", "MD06", 1, "EUR", date(2026, 12, 31), "csv"),
    )


def test_csv_with_bom_semicolons_any_column_order_and_optional_columns() -> None:
    text = (
        "\ufeffDate;Amount;Reason_Code;End_To_End_Id;Currency;Original_Message_Id\n"
        "2026-12-10;12.99;AM04;ren-1;EUR;SEPA-42\n"
    )
    (record,) = parse_return_file(text.encode()).records
    assert record == ReturnRecord(
        "ren-1", "AM04", 1299, "EUR", date(2026, 12, 10), "csv", "SEPA-42"
    )


def test_csv_header_only_is_an_empty_report() -> None:
    assert parse_return_file(b"end_to_end_id,reason_code,amount,date\n").records == ()


HEADER = "end_to_end_id,reason_code,amount,date\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "The file is empty"),
        ("id,reason,amount,date\nx,AM04,1.00,2026-12-10\n", "Line 1: the header"),
        ("end_to_end_id,reason_code,amount\n", "missing date"),
        (HEADER.replace("\n", ",note\n"), "unknown note"),
        (HEADER.replace("\n", ",date\n"), "each once"),
        (HEADER + "ren-1,AM04,12.99,2026-12-10\nren-2,AM04,12.9,2026-12-10\n", "Line 3: amount"),
        (HEADER + "ren-1,AM04,12,2026-12-10\n", "Line 2: amount"),
        (HEADER + "ren-1,AM04,-1.00,2026-12-10\n", "Line 2: amount"),
        (HEADER + "ren-1,AM04,0.00,2026-12-10\n", "Line 2: amount"),
        (HEADER + "ren-1,AM04,1.00,10/12/2026\n", "Line 2: date"),
        (HEADER + "ren-1,AM04,1.00,2026-02-30\n", "Line 2: date"),
        (HEADER + "ren-1,AM4,1.00,2026-12-10\n", "Line 2: reason_code"),
        (HEADER + ",AM04,1.00,2026-12-10\n", "Line 2: end_to_end_id"),
        (HEADER + "ren-1,AM04,1.00\n", "Line 2: expected 4 fields, found 3"),
        (HEADER + "\n\nren-1,AM04,1.00,2026-12-10,x\n", "Line 4: expected 4 fields"),
        (HEADER + 'ren-1,AM04,"1.00,2026-12-10\n', "Line 2: unexpected end of data"),
        (
            HEADER + "ren-1,AM04,1.00,2026-12-10\nren-1,MD06,1.00,2026-12-11\n",
            "Line 3: end-to-end id 'ren-1' already appeared on line 2",
        ),
        ("end_to_end_id,reason_code,amount,date,currency\nr,AM04,1.00,2026-12-10,USD\n", "EUR"),
    ],
)
def test_malformed_csv_names_the_line(body: str, message: str) -> None:
    assert message in rejected(body).detail


def test_csv_must_be_utf8() -> None:
    data = (HEADER + "ren-1,AM04,1.00,2026-12-10\nren-\xe9,AM04,1.00,2026-12-10\n").encode(
        "latin-1"
    )
    assert "Line 3: the file is not UTF-8 text" in rejected(data).detail


# --- classification ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "action"),
    [
        ("AM04", "retry"),
        ("MS03", "retry"),
        ("AC01", "method_unusable"),
        ("AC04", "method_unusable"),
        ("AC06", "method_unusable"),
        ("MD01", "method_unusable"),
        ("MD07", "method_unusable"),
        ("MS02", "method_unusable"),
        ("SL01", "method_unusable"),
        ("MD06", "refund"),
        ("AM05", "other"),
        ("MD02", "other"),
        ("FF01", "other"),
        ("BANK-917", "other"),
        (" am04 ", "retry"),
    ],
)
def test_reason_code_classes(code: str, action: str) -> None:
    assert classify(code) == action
