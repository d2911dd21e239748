"""Base64 as the Live API uses it (docs/protocol-notes.md#base64).

Incoming byte fields may use the standard or the URL-safe alphabet, padded or not (the Python SDK sends
URL-safe). Outgoing byte fields always use the standard alphabet with padding and no newlines: the JS SDK's
``atob`` rejects ``-`` and ``_``.
"""

from __future__ import annotations

import base64
import binascii
import re

from localive.protocol.errors import InvalidArgument

_ALPHABET = re.compile(r"^[A-Za-z0-9+/\-_]*={0,2}$")


def decode_lenient(data: str) -> bytes:
    """Decode standard or URL-safe base64, with or without padding."""
    try:  # the common case, standard and padded (JS SDK, browsers): what the strict decoder accepts, the rest does
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        pass
    text = data.strip()
    if not _ALPHABET.match(text):
        raise InvalidArgument("Invalid value for a bytes field: not base64.")
    text = text.rstrip("=").replace("-", "+").replace("_", "/")
    if len(text) % 4 == 1:
        raise InvalidArgument("Invalid value for a bytes field: not base64.")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgument("Invalid value for a bytes field: not base64.") from exc


def encode_standard(data: bytes) -> str:
    """Standard, padded base64 without line breaks."""
    return base64.b64encode(data).decode("ascii")
