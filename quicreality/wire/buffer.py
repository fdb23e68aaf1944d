"""A byte buffer with pull_/push_ helpers for fixed-width integers and QUIC varints.

Varints follow RFC 9000 §16. The buffer is mutable and position based; pulls past the
end raise :class:`BufferReadError`, pushes past the capacity raise :class:`BufferWriteError`.
"""

from __future__ import annotations

import struct
from typing import Final

_UINT16: Final = struct.Struct("!H")
_UINT32: Final = struct.Struct("!L")
_UINT64: Final = struct.Struct("!Q")

#: Largest value a QUIC varint can carry (RFC 9000 §16).
UINT_VAR_MAX: Final = 0x3FFFFFFFFFFFFFFF
UINT_VAR_MAX_SIZE: Final = 8


#: The storage of a buffer that reads ``bytes`` in place (never written: ``_own`` replaces it).
_NO_STORAGE: Final = bytearray()


class BufferReadError(ValueError):
    """Raised when reading past the end of a buffer or a malformed value."""


class BufferWriteError(ValueError):
    """Raised when writing past the capacity of a buffer or an unencodable value."""


def size_uint_var(value: int) -> int:
    """Return the number of bytes needed to encode ``value`` as a varint."""
    if value <= 0x3F:
        return 1
    if value <= 0x3FFF:
        return 2
    if value <= 0x3FFFFFFF:
        return 4
    if value <= UINT_VAR_MAX:
        return 8
    raise BufferWriteError("Integer is too big for a variable-length integer")


def encode_uint_var(value: int) -> bytes:
    """Encode ``value`` as a varint and return the bytes."""
    buf = Buffer(capacity=UINT_VAR_MAX_SIZE)
    buf.push_uint_var(value)
    return buf.data


class Buffer:
    """A read/write cursor over a bytearray.

    Construct with ``data`` to read, or with ``capacity`` to write. A buffer made from ``bytes``
    reads them in place (no copy: every received datagram and decrypted payload is parsed this
    way); it copies them into its own bytearray only if something is pushed onto it.
    """

    __slots__ = ("_bytes", "_capacity", "_data", "_pos")

    def __init__(self, capacity: int = 0, data: bytes | bytearray | memoryview | None = None):
        #: the bytes read in place, or None when ``_data`` holds the contents
        self._bytes: bytes | None = None
        if data is None:
            self._data = bytearray(capacity)
            self._capacity = capacity
        elif isinstance(data, bytes):
            self._bytes = data
            self._data = _NO_STORAGE
            self._capacity = len(data)
        else:
            self._data = bytearray(data)
            self._capacity = len(self._data)
        self._pos = 0

    def _own(self) -> bytearray:
        """The writable storage, copying the bytes read in place into it the first time."""
        ro = self._bytes
        if ro is not None:
            self._data = bytearray(ro)
            self._bytes = None
        return self._data

    @property
    def capacity(self) -> int:
        """Total size of the underlying storage."""
        return self._capacity

    @property
    def data(self) -> bytes:
        """Bytes from the start up to the current position."""
        ro = self._bytes
        if ro is not None:
            return ro[: self._pos]
        return bytes(self._data[: self._pos])

    @property
    def raw(self) -> bytearray:
        """The underlying storage (no copy; a buffer made from ``bytes`` copies them once here)."""
        return self._own()

    def data_slice(self, start: int, end: int) -> bytes:
        """Return a copy of bytes ``start:end`` (bounds checked against capacity)."""
        if start < 0 or end > self._capacity or start > end:
            raise BufferReadError("Read out of bounds")
        ro = self._bytes
        if ro is not None:
            return ro[start:end]
        return bytes(self._data[start:end])

    def eof(self) -> bool:
        """True when the position is at the end of the buffer."""
        return self._pos == self._capacity

    def seek(self, pos: int) -> None:
        """Move the cursor to ``pos``."""
        if pos < 0 or pos > self._capacity:
            raise BufferReadError("Seek out of bounds")
        self._pos = pos

    def tell(self) -> int:
        """Return the cursor position."""
        return self._pos

    def remaining(self) -> int:
        """Bytes left between the cursor and the end."""
        return self._capacity - self._pos

    # --- pull ---------------------------------------------------------------

    def pull_bytes(self, length: int) -> bytes:
        """Read ``length`` bytes."""
        pos = self._pos
        end = pos + length
        if length < 0 or end > self._capacity:
            raise BufferReadError("Read out of bounds")
        self._pos = end
        ro = self._bytes
        if ro is not None:
            return ro[pos:end]
        return bytes(self._data[pos:end])

    def pull_uint8(self) -> int:
        """Read an unsigned 8-bit integer."""
        pos = self._pos
        if pos >= self._capacity:
            raise BufferReadError("Read out of bounds")
        self._pos = pos + 1
        ro = self._bytes
        if ro is not None:
            return ro[pos]
        return self._data[pos]

    def pull_uint16(self) -> int:
        """Read an unsigned 16-bit big-endian integer."""
        pos = self._pos
        if pos + 2 > self._capacity:
            raise BufferReadError("Read out of bounds")
        self._pos = pos + 2
        return _UINT16.unpack_from(self.view(), pos)[0]

    def pull_uint24(self) -> int:
        """Read an unsigned 24-bit big-endian integer."""
        pos = self._pos
        if pos + 3 > self._capacity:
            raise BufferReadError("Read out of bounds")
        d = self.view()
        self._pos = pos + 3
        return (d[pos] << 16) | (d[pos + 1] << 8) | d[pos + 2]

    def pull_uint32(self) -> int:
        """Read an unsigned 32-bit big-endian integer."""
        pos = self._pos
        if pos + 4 > self._capacity:
            raise BufferReadError("Read out of bounds")
        self._pos = pos + 4
        return _UINT32.unpack_from(self.view(), pos)[0]

    def pull_uint64(self) -> int:
        """Read an unsigned 64-bit big-endian integer."""
        pos = self._pos
        if pos + 8 > self._capacity:
            raise BufferReadError("Read out of bounds")
        self._pos = pos + 8
        return _UINT64.unpack_from(self.view(), pos)[0]

    def pull_uint_var(self) -> int:
        """Read a QUIC variable-length integer (RFC 9000 §16)."""
        pos = self._pos
        if pos >= self._capacity:
            raise BufferReadError("Read out of bounds")
        ro = self._bytes
        if ro is not None:  # the receive path: bytes read in place (kept apart: typed access)
            first = ro[pos]
            kind = first >> 6
            if kind == 0:
                self._pos = pos + 1
                return first
            if kind == 1:
                if pos + 2 > self._capacity:
                    raise BufferReadError("Read out of bounds")
                self._pos = pos + 2
                return ((first & 0x3F) << 8) | ro[pos + 1]
            if kind == 2:
                if pos + 4 > self._capacity:
                    raise BufferReadError("Read out of bounds")
                self._pos = pos + 4
                return ((first & 0x3F) << 24) | (ro[pos + 1] << 16) | (ro[pos + 2] << 8) | ro[pos + 3]
            return self._pull_long_uint_var(ro, pos, kind)
        d = self._data
        first = d[pos]
        kind = first >> 6
        if kind == 0:
            self._pos = pos + 1
            return first
        if kind == 1:
            if pos + 2 > self._capacity:
                raise BufferReadError("Read out of bounds")
            self._pos = pos + 2
            return ((first & 0x3F) << 8) | d[pos + 1]
        return self._pull_long_uint_var(d, pos, kind)

    def _pull_long_uint_var(self, d: bytes | bytearray, pos: int, kind: int) -> int:
        """The 4- and 8-byte varint forms (``kind`` 2 and 3) at ``pos``."""
        if kind == 2:
            if pos + 4 > self._capacity:
                raise BufferReadError("Read out of bounds")
            self._pos = pos + 4
            return _UINT32.unpack_from(d, pos)[0] & 0x3FFFFFFF
        if pos + 8 > self._capacity:
            raise BufferReadError("Read out of bounds")
        self._pos = pos + 8
        return _UINT64.unpack_from(d, pos)[0] & 0x3FFFFFFFFFFFFFFF

    def view(self) -> bytes | bytearray:
        """The contents to read, without a copy (``bytes`` or the buffer's own bytearray: do not
        write into it)."""
        ro = self._bytes
        return ro if ro is not None else self._data

    # --- push ---------------------------------------------------------------

    def _reserve(self, length: int) -> int:
        if self._bytes is not None:
            self._own()
        pos = self._pos
        if pos + length > self._capacity:
            raise BufferWriteError("Write out of bounds")
        self._pos = pos + length
        return pos

    def push_bytes(self, value: bytes | bytearray | memoryview) -> None:
        """Write raw bytes."""
        length = len(value)
        pos = self._reserve(length)
        self._data[pos : pos + length] = value

    def push_uint8(self, value: int) -> None:
        """Write an unsigned 8-bit integer."""
        pos = self._reserve(1)
        self._data[pos] = value

    def push_uint16(self, value: int) -> None:
        """Write an unsigned 16-bit big-endian integer."""
        pos = self._reserve(2)
        _UINT16.pack_into(self._data, pos, value)

    def push_uint24(self, value: int) -> None:
        """Write an unsigned 24-bit big-endian integer."""
        if value < 0 or value > 0xFFFFFF:
            raise BufferWriteError("Integer is too big for uint24")
        pos = self._reserve(3)
        self._data[pos : pos + 3] = value.to_bytes(3, "big")

    def push_uint32(self, value: int) -> None:
        """Write an unsigned 32-bit big-endian integer."""
        pos = self._reserve(4)
        _UINT32.pack_into(self._data, pos, value)

    def push_uint64(self, value: int) -> None:
        """Write an unsigned 64-bit big-endian integer."""
        pos = self._reserve(8)
        _UINT64.pack_into(self._data, pos, value)

    def push_uint_var(self, value: int) -> None:
        """Write a QUIC variable-length integer (RFC 9000 §16), shortest form."""
        if value < 0:
            raise BufferWriteError("Integer is negative")
        if value <= 0x3F:
            pos = self._reserve(1)
            self._data[pos] = value
        elif value <= 0x3FFF:
            pos = self._reserve(2)
            _UINT16.pack_into(self._data, pos, value | 0x4000)
        elif value <= 0x3FFFFFFF:
            pos = self._reserve(4)
            _UINT32.pack_into(self._data, pos, value | 0x80000000)
        elif value <= UINT_VAR_MAX:
            pos = self._reserve(8)
            _UINT64.pack_into(self._data, pos, value | 0xC000000000000000)
        else:
            raise BufferWriteError("Integer is too big for a variable-length integer")
