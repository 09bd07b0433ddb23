"""The reply public key at rest: masked under a key only the server's secret gives.

The reply public key is derived from the receipt alone (``receipt.reply_public_key``).
Stored in clear, it would let anyone with a copy of the database (a dump, a
backup, the database server's disk) and a receipt found on a phone find the
thread, without the secret that keys the lookup digest. So ``threads.reply_public_key``
holds the key XORed with HMAC-SHA256(mask key, lookup digest): 32 bytes, the
column keeps its size. The lookup digest is unique per thread and a thread's
reply key never changes, so each mask is used once; without the mask key it
is a pseudorandom pad and the stored value says nothing about the key.

Whoever holds the secret (a running or configured server) can still unmask
every key and match a receipt; this protects copies of the data, not the
server itself (SECURITY.md, "The keyed lookup digest").
"""

from __future__ import annotations

import hmac

# Its own purpose string, so that this key is unrelated to the lookup digest key
# (receipt.SERVER_DIGEST_INFO, an HKDF), the backup manifest key (backup.MAC_LABEL)
# and the staff session key, although all come from PORTAL_SECRET_KEY.
MASK_LABEL = b"reprisals-portal/v1 reply-key at rest"
KEY_SIZE = 32


def mask_key(secret: bytes) -> bytes:
    """The key that masks stored reply public keys, derived from ``PORTAL_SECRET_KEY``."""
    return hmac.digest(secret, MASK_LABEL, "sha256")


def _pad(key: bytes, lookup_digest: bytes) -> bytes:
    return hmac.digest(key, lookup_digest, "sha256")


def mask(key: bytes, lookup_digest: bytes, reply_public_key: bytes) -> bytes:
    """What ``threads.reply_public_key`` holds: the key XOR HMAC-SHA256(``key``, digest).

    ``key`` is :func:`mask_key`; ``lookup_digest`` is the thread's (unique, so
    no pad is used twice). Raises ``ValueError`` unless the reply key is 32 bytes.
    """
    if len(reply_public_key) != KEY_SIZE:
        raise ValueError(f"a reply public key is {KEY_SIZE} bytes")
    pad = _pad(key, lookup_digest)
    return bytes(a ^ b for a, b in zip(reply_public_key, pad, strict=True))


def unmask(key: bytes, lookup_digest: bytes, stored: bytes) -> bytes:
    """The clear reply public key of a thread from its stored value (the same XOR).

    With another secret's key the result is a wrong key, not an error: the
    readers notice (a reply is refused as not sealed to it; the desk finds the
    exported key differs from the one sealed in the report).
    """
    return mask(key, lookup_digest, bytes(stored))
