"""A QR code drawn on a terminal with Unicode half blocks, for ``portal staff add``.

``segno`` (pure Python) makes the matrix; each line of text shows two rows of
modules with the upper half block, the lower half block, the full block or a
space. Light modules are drawn and dark ones left blank, with a quiet zone of
light modules around, as ``qrencode -t UTF8`` does: on the usual dark
terminal the code reads as dark on light. The code holds a TOTP secret, so
the command prints it only to a terminal, or when asked with ``--qr``.
"""

from __future__ import annotations

import segno

QUIET_ZONE = 2  # modules; phone scanners read a terminal code with less than the 4 of the standard
BLOCKS = {(True, True): "\u2588", (True, False): "\u2580", (False, True): "\u2584"}


def matrix(data: str) -> list[list[bool]]:
    """The QR code's modules for ``data`` (True = dark), error correction M, no quiet zone."""
    code = segno.make(data, error="m", micro=False, boost_error=False)
    return [[bool(module) for module in row] for row in code.matrix]


def lines(data: str) -> list[str]:
    """The QR code for ``data`` as text lines, two module rows per line."""
    modules = matrix(data)
    width = len(modules[0]) + 2 * QUIET_ZONE
    light = [[True] * width for _ in range(QUIET_ZONE)]
    rows = light + [[True] * QUIET_ZONE + [not m for m in row] + [True] * QUIET_ZONE
                    for row in modules] + light  # fmt: skip
    if len(rows) % 2:
        rows.append([True] * width)
    return [
        "".join(BLOCKS.get((top, bottom), " ") for top, bottom in zip(upper, lower, strict=True))
        for upper, lower in zip(rows[::2], rows[1::2], strict=True)
    ]
