"""The checked records between the two passes of an import: sealed, nameless, short-lived.

The checking pass writes each record that passed (IBAN already sealed under the service's
key, card details as the gateway gave them) here; the importing pass reads them back. Issue
17 says the uploaded file is never stored, and this is not it: what is written is the
checked records, each sealed with AES-GCM under a random key that exists only in this
process's memory, in a temporary file that has no name on disk (the OS unlinks it when it is
created) and is gone when closed. Small imports never leave memory at all (a spooled file
rolls over to disk past `MEMORY_BYTES`). A crash leaves nothing readable behind.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Iterator
from types import TracebackType
from typing import IO, Generic, TypeVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel

Record = TypeVar("Record", bound=BaseModel)

MEMORY_BYTES = 1024 * 1024
_NONCE_BYTES = 12
_LENGTH = struct.Struct(">I")


class Spool(Generic[Record]):
    """Append records, then read them all back in order (as often as needed)."""

    def __init__(self, model: type[Record]) -> None:
        self._model = model
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=MEMORY_BYTES)  # noqa: SIM115
        self.count = 0

    def append(self, record: Record) -> None:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, record.model_dump_json().encode(), None)
        self._file.seek(0, os.SEEK_END)
        self._file.write(_LENGTH.pack(len(sealed)) + sealed)
        self.count += 1

    def __iter__(self) -> Iterator[Record]:
        self._file.seek(0)
        while header := self._file.read(_LENGTH.size):
            (length,) = _LENGTH.unpack(header)
            sealed = self._file.read(length)
            plain = self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], None)
            yield self._model.model_validate_json(plain)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Spool[Record]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
