"""The TOTP provisioning URI as a terminal QR code (``portal staff add`` and ``reset-totp``).

The half blocks printed are read back into modules and compared with
segno's matrix for the URI; the format information and the finder patterns
are checked independently of segno (ISO/IEC 18004 §7.9: BCH(15,5), mask
101010000010010, level M). The code holds a secret, so it is printed only
to a terminal or with ``--qr``, and always with the warning.
"""

from __future__ import annotations

import re

import pytest
import segno
from test_staff_cli import env, run

from portal import cli, terminalqr

__all__ = ["env"]  # a fixture used here
URI = "otpauth://totp/Reprisals%20portal:amina?secret=JBSWY3DPEHPK3PXP&issuer=Reprisals%20portal"
HALVES = {
    "\u2588": (True, True),
    "\u2580": (True, False),
    "\u2584": (False, True),
    " ": (False, False),
}


def read_back(lines: list[str]) -> list[list[bool]]:
    """Dark modules (True) from printed lines, quiet zone removed."""
    light: list[list[bool]] = []
    for line in lines:
        pairs = [HALVES[c] for c in line]
        light += [[p[0] for p in pairs], [p[1] for p in pairs]]
    q = terminalqr.QUIET_ZONE
    assert all(all(row) for row in light[:q]) and all(all(row[:q]) for row in light)
    rows = [[not m for m in row[q:-q]] for row in light[q:]]
    while rows and not any(rows[-1]):
        rows.pop()  # the quiet zone below (and the padding row)
    return rows


def reference(data: str) -> list[list[bool]]:
    code = segno.make(data, error="m", micro=False, boost_error=False)
    return [[bool(m) for m in row] for row in code.matrix]


def format_bits(modules: list[list[bool]]) -> int:
    """The 15 format bits around the top-left finder pattern, most significant first."""
    cells = [(8, c) for c in (0, 1, 2, 3, 4, 5, 7, 8)] + [(r, 8) for r in (7, 5, 4, 3, 2, 1, 0)]
    value = 0
    for r, c in cells:
        value = (value << 1) | modules[r][c]
    return value


def bch_remainder(value: int) -> int:
    generator = 0b10100110111
    for shift in range(14, 9, -1):
        if value >> shift & 1:
            value ^= generator << (shift - 10)
    return value


def test_the_printed_code_is_segnos_matrix_for_the_uri():
    printed = terminalqr.lines(URI)
    assert set("".join(printed)) <= set(HALVES)
    modules = read_back(printed)
    assert modules == reference(URI)
    assert len(modules) == len(modules[0]) == 17 + 4 * segno.make(URI, error="m").version


def test_the_printed_code_has_the_finder_patterns_and_a_valid_level_m_format():
    modules = read_back(terminalqr.lines(URI))
    size = len(modules)
    finder = [[r in (0, 6) or c in (0, 6) or (2 <= r <= 4 and 2 <= c <= 4) for c in range(7)]
              for r in range(7)]  # fmt: skip
    for top, left in ((0, 0), (0, size - 7), (size - 7, 0)):
        assert [row[left : left + 7] for row in modules[top : top + 7]] == finder
    bits = format_bits(modules) ^ 0b101010000010010
    assert bch_remainder(bits) == 0
    assert bits >> 13 == 0b00  # error correction level M


def test_no_qr_code_when_the_output_is_not_a_terminal(capsys, env):
    code, out, _ = run(capsys, "staff", "add", "amina")
    assert code == 0 and "\u2588" not in out and "QR code" not in out


@pytest.mark.parametrize("how", ["--qr", "terminal"])
def test_the_qr_code_of_the_printed_uri_with_its_warning(capsys, env, monkeypatch, how):
    argv = ["staff", "add", "amina"] + (["--qr"] if how == "--qr" else [])
    if how == "terminal":
        monkeypatch.setattr(cli.sys.stdout, "isatty", lambda: True)
    code, out, _ = run(capsys, *argv)
    assert code == 0
    uri = re.search(r"(otpauth://totp/\S+)", out).group(1)
    assert "do not photograph it with anything else, share it" in out
    printed = [line for line in out.splitlines() if line and set(line) <= set(HALVES)]
    assert read_back(printed) == reference(uri)
    code, out, _ = run(capsys, "staff", "reset-totp", "amina", "--qr")
    new_uri = re.search(r"(otpauth://totp/\S+)", out).group(1)
    printed = [line for line in out.splitlines() if line and set(line) <= set(HALVES)]
    assert new_uri != uri and read_back(printed) == reference(new_uri)
