"""Reads a string from a GGUF file's metadata, in pure Python and without loading the model.

A GGUF file (llama.cpp's model format) starts with the magic "GGUF", a uint32 version, the
tensor count and the key/value count, then the key/value pairs: a string key, a uint32 value
type and the value. Strings are a length then UTF-8 bytes; arrays are an element type, a count
and the elements. Version 1 wrote counts and lengths as uint32, versions 2 and 3 as uint64.
Files are little-endian unless written for a big-endian host, which shows as a byte-swapped
version. The reader stops at the key it wants: the metadata comes before the tensor data, and
the bulky keys (the tokenizer's vocabulary) usually come after general.*.

Reading blocks on file I/O: call it from a worker thread, never from the event loop.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (1, 2, 3)
STRING = 8
ARRAY = 9
# Value type -> struct format of one element.
SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
# No real key or name comes near this; a larger length means a corrupt file, not a long name.
MAX_STRING_BYTES = 1 << 20


class GGUFError(ValueError):
    """The file is not a GGUF file this reader understands, or its header is cut short."""


class _Header:
    """A cursor over the header's fields in the file's byte order and length width."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        if self._read(4) != MAGIC:
            raise GGUFError("not a GGUF file (no GGUF magic)")
        raw_version = self._read(4)
        self.order = "<"
        version = struct.unpack("<I", raw_version)[0]
        if version not in SUPPORTED_VERSIONS:
            self.order = ">"
            version = struct.unpack(">I", raw_version)[0]
        if version not in SUPPORTED_VERSIONS:
            raise GGUFError(f"unsupported GGUF version {struct.unpack('<I', raw_version)[0]}")
        self.version = version
        self.length_format = "I" if version == 1 else "Q"
        self.tensor_count = self.length()
        self.kv_count = self.length()

    def _read(self, size: int) -> bytes:
        data = self.file.read(size)
        if len(data) != size:
            raise GGUFError("the GGUF header is cut short")
        return data

    def scalar(self, fmt: str) -> int | float | bool:
        fmt = self.order + fmt
        value: int | float | bool = struct.unpack(fmt, self._read(struct.calcsize(fmt)))[0]
        return value

    def length(self) -> int:
        return int(self.scalar(self.length_format))

    def string(self) -> str:
        size = self.length()
        if size > MAX_STRING_BYTES:
            raise GGUFError(f"a GGUF string claims {size} bytes")
        return self._read(size).decode("utf-8", errors="replace")

    def value_type(self) -> int:
        return int(self.scalar("I"))

    def skip(self, value_type: int) -> None:
        if value_type in SCALARS:
            self.file.seek(struct.calcsize(SCALARS[value_type]), 1)
        elif value_type == STRING:
            self.file.seek(self.length(), 1)
        elif value_type == ARRAY:
            element_type, count = self.value_type(), self.length()
            if element_type in SCALARS:
                self.file.seek(count * struct.calcsize(SCALARS[element_type]), 1)
            else:
                for _ in range(count):
                    self.skip(element_type)
        else:
            raise GGUFError(f"unknown GGUF value type {value_type}")


def read_string(path: Path, key: str) -> str | None:
    """The string stored under ``key`` in the file's metadata; None when the key is absent or
    holds another type. Raises GGUFError for a file that is not GGUF, OSError if unreadable."""
    with path.open("rb") as file:
        header = _Header(file)
        for _ in range(header.kv_count):
            name = header.string()
            value_type = header.value_type()
            if name == key:
                return header.string() if value_type == STRING else None
            header.skip(value_type)
    return None
