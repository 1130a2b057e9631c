"""Tiny GGUF files written byte by byte, for testing the header reader without a real model."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Literal

# Value type codes from the GGUF spec.
UINT32, FLOAT32, BOOL, STRING, ARRAY, UINT64 = 4, 6, 7, 8, 9, 10
_FORMATS = {UINT32: "I", FLOAT32: "f", BOOL: "?", UINT64: "Q"}

# A value as the writer takes it: (type, value), an array being (ARRAY, (element type, [values])).
Typed = tuple[int, object]


def write_gguf(
    path: Path, metadata: list[tuple[str, Typed]], *, version: int = 3,
    order: Literal["<", ">"] = "<", tensor_count: int = 0,
) -> Path:
    """A GGUF header with ``metadata`` in order, and no tensors after it."""
    length = "I" if version == 1 else "Q"

    def pack(fmt: str, value: object) -> bytes:
        return struct.pack(order + fmt, value)

    def text(value: str) -> bytes:
        raw = value.encode()
        return pack(length, len(raw)) + raw

    def typed(value_type: int, value: object) -> bytes:
        if value_type == STRING:
            assert isinstance(value, str)
            return text(value)
        if value_type == ARRAY:
            assert isinstance(value, tuple)
            element_type, items = value
            return (pack("I", element_type) + pack(length, len(items))
                    + b"".join(typed(element_type, item) for item in items))
        return pack(_FORMATS[value_type], value)

    body = b"GGUF" + pack("I", version) + pack(length, tensor_count) + pack(length, len(metadata))
    for key, (value_type, value) in metadata:
        body += text(key) + pack("I", value_type) + typed(value_type, value)
    path.write_bytes(body)
    return path
