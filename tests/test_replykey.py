"""``portal.replykey``: the reply public key at rest, masked under the server's secret.

The known answers were computed with OpenSSL (``openssl dgst -sha256 -hmac``),
not with the module under test, so that a change of label, of HMAC argument
order or of XOR is caught.
"""

from __future__ import annotations

import pytest

from portal import receipt, replykey

SECRET = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
DIGEST = bytes(range(32))
CLEAR = bytes(range(32, 64))
# HMAC-SHA256(SECRET, b"reprisals-portal/v1 reply-key at rest")
MASK_KEY = bytes.fromhex("46c9c6ab1fb3cb3a07987d902ecd0b1b22957136bc70f722ef09c47c7aeaf733")
# HMAC-SHA256(MASK_KEY, DIGEST): the pad
PAD = bytes.fromhex("65639f662191c98b4bc70e9e46e11b4d13896444e347798493d50fc9d50a08df")
# CLEAR XOR PAD
STORED = bytes.fromhex("4542bd4505b4efac63ee24b56acc356223b85677d7724fb3abec35f2e93736e0")


def test_known_answer():
    assert replykey.mask_key(SECRET) == MASK_KEY
    assert replykey.mask(MASK_KEY, DIGEST, CLEAR) == STORED
    assert bytes(a ^ b for a, b in zip(CLEAR, PAD, strict=True)) == STORED
    assert replykey.unmask(MASK_KEY, DIGEST, STORED) == CLEAR


def test_the_mask_key_is_not_another_key_of_the_secret():
    assert replykey.mask_key(SECRET) != receipt.server_digest_key(SECRET)
    assert len(replykey.mask_key(SECRET)) == 32


def test_round_trip_keeps_the_size_and_hides_the_key():
    shown = receipt.generate()
    clear = receipt.reply_public_key(shown)
    digest = receipt.lookup_digest(receipt.server_digest_key(SECRET), receipt.lookup_token(shown))
    stored = replykey.mask(replykey.mask_key(SECRET), digest, clear)
    assert len(stored) == len(clear) == 32
    assert stored != clear
    assert replykey.unmask(replykey.mask_key(SECRET), digest, stored) == clear
    # Read back from a database as a memoryview (PostgreSQL's bytea) works the same.
    assert replykey.unmask(replykey.mask_key(SECRET), digest, memoryview(stored)) == clear


def test_another_secret_or_digest_stores_another_value():
    key = replykey.mask_key(SECRET)
    other_key = replykey.mask_key(SECRET.replace(b"0", b"1"))
    stored = replykey.mask(key, DIGEST, CLEAR)
    assert replykey.mask(other_key, DIGEST, CLEAR) != stored
    assert replykey.mask(key, bytes(32), CLEAR) != stored
    # Another secret unmasks to a wrong key, not to the clear one.
    assert replykey.unmask(other_key, DIGEST, stored) != CLEAR


@pytest.mark.parametrize("size", [0, 31, 33])
def test_refuses_a_key_of_another_size(size):
    with pytest.raises(ValueError, match="32 bytes"):
        replykey.mask(MASK_KEY, DIGEST, bytes(size))
