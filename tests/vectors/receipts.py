"""Generate the receipt known answers, ``tests/vectors/v1/receipts.json``, with ``portal.receipt``.

Run ``.venv/bin/python tests/vectors/receipts.py`` to (re)write the file and
``.venv/bin/python tests/vectors/receipts.py --check`` to verify that the
committed file is exactly what this script produces (``tests/test_receipt.py``
runs the check). Everything is deterministic: the random bytes a generator
draws are SHAKE-256 of fixed labels or written out by hand, and every value an
implementation consumes or must produce is in the file, so the browser's
``receipt.js`` (and any third implementation) is checked against it without
running this script. ``docs/FORMAT.md`` §14 and §15 specify what is computed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUT = HERE / "v1" / "receipts.json"

try:
    from portal import receipt, report
except ModuleNotFoundError:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))
    from portal import receipt, report

LABEL_PREFIX = b"reprisals-portal test vectors v1 "


def shake(label: str, size: int) -> bytes:
    return hashlib.shake_256(LABEL_PREFIX + f"receipt randomness: {label}".encode()).digest(size)


class Recorder:
    """A random source that serves fixed bytes and records exactly what was drawn."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def __call__(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise AssertionError("the fixed randomness ran out")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    @property
    def drawn(self) -> bytes:
        return self.data[: self.at]


# Random sources for generate(): (name, description, bytes offered).
N = receipt.RANDOM_DIGITS
GENERATE = [
    ("plain", "SHAKE-256 bytes, none of them 250 or above", None),
    (
        "rejected_bytes",
        "the first draw has the bytes 250 to 255, which are skipped, so a second draw is needed",
        bytes([250, 1, 251, 2, 252, 3, 253, 4, 254, 5, 255, 6])
        + bytes(range(10, 10 + N - 12))
        + bytes(range(100, 100 + N)),
    ),
    (
        "whole_draw_rejected",
        "the first draw is all 255 and gives no digit; the second gives 20, the third the rest",
        bytes([255] * N)
        + bytes([249] * 20 + [250] * (N - 20))
        + bytes(range(0, 250, 10))[:N]
        + bytes(N),
    ),
    (
        "digit_extremes",
        "bytes 0, 9, 10, 249: byte modulo 10",
        bytes([0, 9, 10, 249, 240, 19, 20, 99, 100, 101, 199, 200, 201, 248, 5] * 2)[:N],
    ),
]


def _offered(name: str, data: bytes | None) -> bytes:
    if data is not None:
        return data
    for i in range(1000):
        candidate = shake(f"{name}/{i}", N)
        if max(candidate) < 250:
            return candidate
    raise AssertionError("no candidate without rejections")


def generate_cases() -> list[dict[str, Any]]:
    cases = []
    for name, description, data in GENERATE:
        rng = Recorder(_offered(name, data))
        made = receipt.generate(rng)
        cases.append(
            {
                "name": name,
                "description": description,
                "randomness_hex": rng.drawn.hex(),
                "draws": len(rng.drawn) // N,
                "receipt": made,
            }
        )
    return cases


def derivation(text: str) -> dict[str, Any]:
    public = receipt.reply_public_key(text)
    return {
        "receipt": text,
        "digits": receipt.normalize(text),
        "lookup_token_hex": receipt.lookup_token(text).hex(),
        "reply_secret_hex": receipt.reply_secret(text).hex(),
        "reply_public_key_hex": public.hex(),
        "reply_public_key_base64": base64.b64encode(public).decode(),
    }


def derivation_cases(generated: list[dict[str, Any]]) -> list[dict[str, Any]]:
    texts = [c["receipt"] for c in generated]
    texts.append(receipt.display("0" * receipt.LENGTH))  # Damm of 29 zeros is 0
    for i in range(4):
        texts.append(receipt.generate(Recorder(shake(f"derivation/{i}", 4 * N))))
    return [derivation(t) for t in texts]


ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
DEVANAGARI = str.maketrans("0123456789", "०१२३४५६७८९")
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
MATH_BOLD = str.maketrans({str(d): chr(0x1D7CE + d) for d in range(10)})


def normalize_cases(base: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Texts a person might type for the receipt ``base``, and texts that are refused."""
    digits = receipt.normalize(base)
    groups = base.split(" ")
    valid = [
        ("the display form", base),
        ("no separators", digits),
        ("groups joined by hyphens", "-".join(groups)),
        ("Arabic-Indic digits", base.translate(ARABIC_INDIC)),
        ("Extended Arabic-Indic (Persian) digits, hyphens", "-".join(groups).translate(PERSIAN)),
        ("Devanagari digits", base.translate(DEVANAGARI)),
        ("fullwidth digits", digits.translate(FULLWIDTH)),
        ("mathematical bold digits (outside the BMP)", base.translate(MATH_BOLD)),
        ("mixed scripts", digits[:10] + digits[10:20].translate(ARABIC_INDIC) + digits[20:]),
        (
            "no-break space, thin space, narrow no-break space and tab as separators",
            "\u00a0".join(groups[:2]) + "\u2009" + "\u202f".join(groups[2:4]) + "\t"
            + " - ".join(groups[4:]),
        ),
        (
            "surrounding whitespace that Python's str.strip() removes (NEL, ideographic space)",
            "\n\u0085 " + base + "\u3000\r\n",
        ),
        ("surrounding U+001C, U+001F (controls str.strip() removes)", "\x1c" + base + "\x1f"),
    ]  # fmt: skip
    wrong_digit = digits[:7] + str((int(digits[7]) + 1) % 10) + digits[8:]
    i = next(k for k in range(len(digits) - 1) if digits[k] != digits[k + 1])
    swapped = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
    invalid = [
        ("empty", ""),
        ("29 digits", digits[:-1]),
        ("31 digits", digits + "0"),
        ("one digit wrong", wrong_digit),
        ("two adjacent digits swapped", swapped),
        ("the letter O for a zero", "O" + digits[1:]),
        ("a line break inside", digits[:15] + "\n" + digits[15:]),
        ("a byte-order mark in front (str.strip() keeps U+FEFF)", "\ufeff" + base),
        ("an en dash as separator", "\u2013".join(groups)),
        ("a superscript digit (not a decimal digit)", "\u00b2" + digits[1:]),
        ("far too long (201 characters)", base + " " * (201 - len(base))),
    ]
    good = [{"description": d, "input": t, "digits": receipt.normalize(t)} for d, t in valid]
    bad = []
    for description, text in invalid:
        try:
            receipt.normalize(text)
        except receipt.InvalidReceipt as err:
            bad.append({"description": description, "input": text, "error": str(err)})
        else:
            raise AssertionError(f"accepted: {description}")
    return good, bad


def server_digest_cases() -> list[dict[str, Any]]:
    out = []
    for i, secret in enumerate([b"example server secret, not a real one", bytes(range(64))]):
        key = receipt.server_digest_key(secret)
        token = hashlib.sha256(LABEL_PREFIX + f"lookup token {i}".encode()).digest()
        out.append(
            {
                "server_secret_hex": secret.hex(),
                "digest_key_hex": key.hex(),
                "lookup_token_hex": token.hex(),
                "lookup_digest_hex": receipt.lookup_digest(key, token).hex(),
            }
        )
    return out


def report_example(text: str) -> dict[str, Any]:
    fields = {
        "target_kind": "individual",
        "target_role": ["defender", "journalist"],
        "un_body": ["special_procedure"],
        "un_body_name": "Special Rapporteur on human rights defenders",
        "acts": ["threats", "surveillance", "detention"],
        "country": "Ruritania",
        "when_month": "3",
        "when_year": "2026",
        "when_approximate": True,
        "urgent": True,
        "consent_informed": "yes",
        "consent_publication": "anonymous",
        "consent_raise_with_state": "no",
        "consent_reply": "yes",
        "account": "Tras mi testimonio ante el Consejo me siguieron.\nПотом угрожали семье.",
    }
    fields = report.from_form(
        {k: v if isinstance(v, list) else [_form(v)] for k, v in fields.items()}
    )
    return {
        "receipt": text,
        "fields": fields,
        "document": report.document(fields, receipt.reply_public_key(text), "browser"),
    }


def _form(value: object) -> str:
    return "on" if value is True else str(value)


def build() -> bytes:
    generated = generate_cases()
    derivations = derivation_cases(generated)
    good, bad = normalize_cases(derivations[0]["receipt"])
    document = {
        "description": "Receipt known answers for the reprisals portal (docs/FORMAT.md §14, §15), "
        "made with portal/receipt.py by tests/vectors/receipts.py. Public test data.",
        "constants": {
            "random_digits": receipt.RANDOM_DIGITS,
            "length": receipt.LENGTH,
            "group": receipt.GROUP,
            "byte_limit": 250,
            "max_input_code_points": 200,
            "separators": sorted(f"U+{ord(c):04X}" for c in receipt.SEPARATORS),
            "damm_table": ["".join(map(str, row)) for row in receipt.DAMM],
            "kdf": "HKDF-SHA256, no salt, 32-byte output, input key = the 30 ASCII digits",
            "lookup_info": receipt.LOOKUP_INFO.decode(),
            "reply_info": receipt.REPLY_INFO.decode(),
            "server_digest_info": receipt.SERVER_DIGEST_INFO.decode(),
        },
        "generate": generated,
        "derivations": derivations,
        "normalize": good,
        "invalid": bad,
        "server_lookup_digest": server_digest_cases(),
        "report": report_example(derivations[1]["receipt"]),
    }
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify the file instead of writing")
    args = parser.parse_args(argv)
    data = build()
    if args.check:
        if not OUT.is_file() or OUT.read_bytes() != data:
            print(
                "receipts.py --check: tests/vectors/v1/receipts.json is out of date: "
                "run .venv/bin/python tests/vectors/receipts.py",
                file=sys.stderr,
            )
            return 1
        print("receipts.py --check: receipts.json matches")
        return 0
    OUT.write_bytes(data)
    print(f"wrote {OUT.relative_to(ROOT)} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
