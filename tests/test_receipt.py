"""``portal.receipt``: the Damm check, typed forms of a receipt, generation, derived values.

Also checks the known answers in ``tests/vectors/v1/receipts.json`` (which the
browser's ``receipt.js`` is tested against) and that the file is up to date.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import json
import random
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from nacl.public import PrivateKey

from portal import receipt, report

VECTORS = Path(__file__).resolve().parent / "vectors"
KNOWN = json.loads((VECTORS / "v1" / "receipts.json").read_text(encoding="utf-8"))
SAMPLE = "44775 37925 13881 75035 99251 20439"  # receipts.json "plain"


def fixed(data: bytes) -> receipt.Random:
    """A random source that serves ``data`` and fails if asked for more."""
    stream = iter([data])
    buffer = bytearray()

    def rng(n: int) -> bytes:
        while len(buffer) < n:
            buffer.extend(next(stream))
        out = bytes(buffer[:n])
        del buffer[:n]
        return out

    return rng


def digits_of(text: str) -> str:
    return text.replace(" ", "")


# --- the known-answer file ---------------------------------------------------------------------


def test_receipts_json_is_what_the_generator_makes() -> None:
    proc = subprocess.run(
        [sys.executable, str(VECTORS / "receipts.py"), "--check"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_known_constants() -> None:
    c = KNOWN["constants"]
    assert c["lookup_info"].encode() == receipt.LOOKUP_INFO
    assert c["reply_info"].encode() == receipt.REPLY_INFO
    assert c["server_digest_info"].encode() == receipt.SERVER_DIGEST_INFO
    assert c["damm_table"] == ["".join(map(str, row)) for row in receipt.DAMM]
    assert (c["random_digits"], c["length"], c["group"]) == (29, 30, 5)
    assert {chr(int(s[2:], 16)) for s in c["separators"]} == receipt.SEPARATORS


@pytest.mark.parametrize("case", KNOWN["generate"], ids=lambda c: c["name"])
def test_known_generate(case: dict[str, object]) -> None:
    data = bytes.fromhex(str(case["randomness_hex"]))
    assert len(data) == 29 * int(str(case["draws"]))
    assert receipt.generate(fixed(data)) == case["receipt"]


def test_known_generate_cases_cover_rejection() -> None:
    draws = {c["name"]: c["draws"] for c in KNOWN["generate"]}
    assert draws["plain"] == 1 and draws["rejected_bytes"] == 2
    assert draws["whole_draw_rejected"] == 3


@pytest.mark.parametrize("case", KNOWN["derivations"], ids=lambda c: c["receipt"])
def test_known_derivations(case: dict[str, str]) -> None:
    text = case["receipt"]
    assert receipt.normalize(text) == case["digits"]
    assert receipt.lookup_token(text).hex() == case["lookup_token_hex"]
    assert receipt.reply_secret(text).hex() == case["reply_secret_hex"]
    public = receipt.reply_public_key(text)
    assert public.hex() == case["reply_public_key_hex"]
    assert base64.b64encode(public).decode() == case["reply_public_key_base64"]


def test_known_normalize_and_invalid() -> None:
    for case in KNOWN["normalize"]:
        assert receipt.normalize(case["input"]) == case["digits"], case["description"]
    for case in KNOWN["invalid"]:
        with pytest.raises(receipt.InvalidReceipt) as err:
            receipt.normalize(case["input"])
        assert str(err.value) == case["error"], case["description"]


def test_known_server_digests() -> None:
    for case in KNOWN["server_lookup_digest"]:
        key = receipt.server_digest_key(bytes.fromhex(case["server_secret_hex"]))
        assert key.hex() == case["digest_key_hex"]
        token = bytes.fromhex(case["lookup_token_hex"])
        assert receipt.lookup_digest(key, token).hex() == case["lookup_digest_hex"]


def test_known_report_document() -> None:
    example = KNOWN["report"]
    public = receipt.reply_public_key(example["receipt"])
    assert report.document(example["fields"], public, "browser") == example["document"]


# --- the Damm check ----------------------------------------------------------------------------


def test_damm_table_is_a_totally_antisymmetric_quasigroup() -> None:
    table = receipt.DAMM
    for row in table:
        assert sorted(row) == list(range(10))
    for col in range(10):
        assert sorted(table[r][col] for r in range(10)) == list(range(10))
    assert all(table[i][i] == 0 for i in range(10))  # weak totally anti-symmetric form
    for c in range(10):
        for x in range(10):
            for y in range(10):
                if x != y:
                    assert table[table[c][x]][y] != table[table[c][y]][x]


@pytest.mark.parametrize("seed", range(5))
def test_damm_catches_every_single_digit_error_and_adjacent_swap(seed: int) -> None:
    digits = digits_of(receipt.generate(fixed(random.Random(seed).randbytes(29 * 4))))
    assert receipt.damm(digits) == 0
    for i in range(len(digits)):
        for d in "0123456789":
            if d != digits[i]:
                assert receipt.damm(digits[:i] + d + digits[i + 1 :]) != 0
        if i + 1 < len(digits) and digits[i] != digits[i + 1]:
            swapped = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
            assert receipt.damm(swapped) != 0


def test_normalize_refuses_errors_with_messages_a_person_can_act_on() -> None:
    digits = digits_of(SAMPLE)
    wrong = digits[:3] + str((int(digits[3]) + 5) % 10) + digits[4:]
    with pytest.raises(receipt.InvalidReceipt, match="one of the digits is wrong, or two are"):
        receipt.normalize(wrong)
    with pytest.raises(receipt.InvalidReceipt, match="a receipt has 30 digits; this has 29"):
        receipt.normalize(digits[:-1])
    with pytest.raises(receipt.InvalidReceipt, match="a receipt has 30 digits; this has 35"):
        receipt.normalize(SAMPLE + " 12345")
    with pytest.raises(receipt.InvalidReceipt, match="a receipt has 30 digits; this has 0"):
        receipt.normalize("  - ")
    with pytest.raises(receipt.InvalidReceipt, match="only digits"):
        receipt.normalize(SAMPLE.replace("0", "O"))
    with pytest.raises(receipt.InvalidReceipt, match="far longer"):
        receipt.normalize(SAMPLE + " " * 200)
    assert issubclass(receipt.InvalidReceipt, ValueError)


# --- typed forms -------------------------------------------------------------------------------


def test_every_unicode_decimal_digit_is_read_as_its_value() -> None:
    digits = digits_of(SAMPLE)
    zeros = [c for c in range(0x110000) if unicodedata.decimal(chr(c), None) == 0]
    assert len(zeros) >= 60
    for zero in zeros:
        typed = "".join(chr(zero + int(d)) for d in digits)
        assert receipt.normalize(typed) == digits, hex(zero)
    # Numbers that are not decimal digits are refused: superscripts, circled, Roman, fractions.
    for char in "²①Ⅻ½߀":
        if unicodedata.decimal(char, None) is None:
            with pytest.raises(receipt.InvalidReceipt, match="only digits"):
                receipt.normalize(char + digits[1:])


def test_separators_and_surrounding_whitespace() -> None:
    digits = digits_of(SAMPLE)
    groups = SAMPLE.split(" ")
    for sep in receipt.SEPARATORS:
        assert receipt.normalize(sep.join(groups)) == digits
        assert receipt.normalize(sep.join(digits)) == digits
    assert receipt.normalize("\n\u3000" + SAMPLE + "\r\n\u0085") == digits
    # Whitespace other than the separators counts only around the receipt, not inside.
    with pytest.raises(receipt.InvalidReceipt, match="only digits"):
        receipt.normalize(digits[:10] + "\n" + digits[10:])
    # A byte-order mark is not whitespace to str.strip(): refused, as in receipt.js.
    with pytest.raises(receipt.InvalidReceipt, match="only digits"):
        receipt.normalize("\ufeff" + SAMPLE)
    for dash in "\u2010\u2011\u2012\u2013\u2014\u2212":
        with pytest.raises(receipt.InvalidReceipt, match="only digits"):
            receipt.normalize(dash.join(groups))


def test_display_groups_of_five() -> None:
    assert receipt.display(digits_of(SAMPLE)) == SAMPLE
    assert receipt.display("1234567") == "12345 67"


# --- generation --------------------------------------------------------------------------------


def test_each_byte_below_250_maps_to_each_digit_equally_often() -> None:
    counts = collections.Counter(b % 10 for b in range(250))
    assert set(counts.values()) == {25}
    # And generate() uses exactly those bytes, in order, skipping 250..255.
    data = bytes(range(250, 256)) + bytes(range(29)) + bytes(range(29))
    made = receipt.generate(fixed(data[:29] + data[29:58]))
    expected = "".join(str(b % 10) for b in data[6:35])
    assert digits_of(made)[:29] == expected


def test_generate_skips_whole_draws_of_rejected_bytes() -> None:
    made = receipt.generate(fixed(b"\xff" * 29 * 3 + b"\x07" * 29))
    assert digits_of(made)[:29] == "7" * 29


def test_generate_gives_valid_distinct_receipts_with_uniform_looking_digits() -> None:
    made = [receipt.generate() for _ in range(2000)]
    assert len(set(made)) == len(made)
    counts: collections.Counter[str] = collections.Counter()
    for text in made:
        assert len(text) == 35 and text.count(" ") == 5
        digits = receipt.normalize(text)
        assert receipt.display(digits) == text
        counts.update(digits[:29])
    # 58,000 digits: each value near 5,800. Far looser than chance could violate
    # (about 18 standard deviations), so this can only catch a broken mapping.
    assert all(4500 < counts[d] < 7100 for d in "0123456789"), counts
    assert receipt.RANDOM_DIGITS * 3.3219 > 96  # log2(10) bits per digit


# --- derived values ----------------------------------------------------------------------------


def test_derivations_are_hkdf_with_their_own_purposes() -> None:
    digits = digits_of(SAMPLE).encode()

    def hkdf(ikm: bytes, info: bytes) -> bytes:
        prk = hmac.digest(bytes(32), ikm, "sha256")
        return hmac.digest(prk, info + b"\x01", "sha256")

    assert receipt.lookup_token(SAMPLE) == hkdf(digits, receipt.LOOKUP_INFO)
    assert receipt.reply_secret(SAMPLE) == hkdf(digits, receipt.REPLY_INFO)
    assert receipt.lookup_token(SAMPLE) != receipt.reply_secret(SAMPLE)
    public = PrivateKey(receipt.reply_secret(SAMPLE)).public_key
    assert receipt.reply_public_key(SAMPLE) == bytes(public)


def test_typed_forms_derive_the_same_values() -> None:
    arabic = SAMPLE.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    for typed in (digits_of(SAMPLE), "-".join(SAMPLE.split(" ")), f"  {arabic}\n"):
        assert receipt.lookup_token(typed) == receipt.lookup_token(SAMPLE)
        assert receipt.reply_public_key(typed) == receipt.reply_public_key(SAMPLE)
    with pytest.raises(receipt.InvalidReceipt):
        receipt.lookup_token(SAMPLE[:-1] + "0")


def test_server_lookup_digest_is_keyed_by_the_server_secret() -> None:
    token = receipt.lookup_token(SAMPLE)
    one = receipt.lookup_digest(receipt.server_digest_key(b"secret one"), token)
    two = receipt.lookup_digest(receipt.server_digest_key(b"secret two"), token)
    assert one != two and len(one) == 32
    assert one != hashlib.sha256(token).digest()
