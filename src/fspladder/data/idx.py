"""Reader for IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.

Format (http://yann.lecun.com/exdb/mnist/): a 4-byte magic ``0x00 0x00 TT DD``
where ``TT`` is the element type (0x08 = unsigned byte) and ``DD`` the number
of dimensions, then ``DD`` big-endian uint32 sizes, then the data.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from ..errors import FspladderError

__all__ = ["read_idx", "DataFileError"]


class DataFileError(FspladderError, ValueError):
    """A data file is missing, truncated or not in the expected format."""


_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (``.gz`` is decompressed) into a numpy array."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"IDX file {path} does not exist")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataFileError(f"IDX file {path} is not a readable gzip file ({e}); re-download or re-install it") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataFileError(
            f"IDX file {path} has a wrong magic number {raw[:4].hex() or '(empty file)'}; "
            "expected 0000TTDD with TT an IDX type code (08 for unsigned bytes)"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFileError(f"IDX file {path} is truncated inside its header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataFileError(
            f"IDX file {path} is truncated or padded: its header says shape {shape} "
            f"({expected} bytes of data) but it holds {len(raw) - header} bytes"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
