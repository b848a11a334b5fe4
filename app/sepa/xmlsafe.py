"""Parsing XML that came from outside without letting it reach outside.

Bank reports are uploaded by an admin, but their bytes are still untrusted: a document
type declaration can define entities that expand to gigabytes ("billion laughs") or pull
local files and URLs into the text (XXE). ISO 20022 messages never carry a DTD, so any
DOCTYPE is refused outright; the parser additionally resolves no entities, loads no DTD,
touches no network, keeps libxml2's size limits and is given a bounded number of bytes.
"""

from __future__ import annotations

from lxml import etree

from app.core.errors import PayloadTooLarge, Unprocessable

MAX_XML_BYTES = 10 * 1024 * 1024


def _parser() -> etree.XMLParser:
    # A new parser per document: lxml parsers keep state and are not safe to share
    # between threads.
    return etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def check_size(data: bytes, max_bytes: int) -> None:
    """Refuse an uploaded file over `max_bytes` (413, code `file_too_large`)."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"The file has {len(data)} bytes; at most {max_bytes} are accepted.",
            code="file_too_large",
        )


def parse_xml(data: bytes, *, code: str, max_bytes: int = MAX_XML_BYTES) -> etree._Element:
    """The root element of `data`; `Unprocessable(code=code)` when it is not acceptable XML."""
    check_size(data, max_bytes)
    # Checked on the bytes as well as after parsing: an encoding declaration (UTF-16) could
    # hide the keyword from the byte check, and the parser must never see an entity.
    shouting = data.upper()
    if b"<!DOCTYPE" in shouting or b"<!ENTITY" in shouting:
        raise Unprocessable("XML with a document type declaration is not accepted.", code=code)
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as error:
        line, column = error.position
        raise Unprocessable(
            f"The file is not well-formed XML (line {line}, column {column}): {error.msg}",
            code=code,
        ) from None
    if root.getroottree().docinfo.doctype:
        raise Unprocessable("XML with a document type declaration is not accepted.", code=code)
    return root


def local_name(element: etree._Element) -> str:
    return etree.QName(element).localname


def element_path(element: etree._Element) -> str:
    """A readable XPath of `element` without namespaces, e.g. `/Document/A/B[2]/C`, with
    positions only where siblings share the name."""
    parts: list[str] = []
    current: etree._Element | None = element
    while current is not None:
        parent = current.getparent()
        name = local_name(current)
        if parent is not None:
            same = [child for child in parent if child.tag == current.tag]
            if len(same) > 1:
                name += f"[{same.index(current) + 1}]"
        parts.append(name)
        current = parent
    return "/" + "/".join(reversed(parts))
