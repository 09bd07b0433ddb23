"""Tor client authorisation keys for the staff onion service (``portal onion-auth NAME``).

Tor v3 onion services authorise clients by x25519 key: the server holds one
``<name>.auth`` file per client in its ``authorized_clients/`` directory
(``descriptor:x25519:<public key in base32>``), and each staff member's Tor
Browser holds the private key (base32), which it asks for the first time the
address is opened, or a ``.auth_private`` line in a system tor's
``ClientOnionAuthDir``. Without the private key a client cannot even decrypt
the service's descriptor, so the staff interface is unreachable to everyone
else, whatever its password and TOTP.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
ONION = re.compile(r"[a-z2-7]{56}")


@dataclass(frozen=True)
class ClientKey:
    name: str
    server_line: str  # the content of authorized_clients/<name>.auth on the server
    private_key: str  # base32, what Tor Browser asks for
    client_line: str | None  # a system tor's <name>.auth_private line, given the address


def b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=")


def new_client_key(name: str, onion: str | None = None) -> ClientKey:
    """A fresh x25519 key pair for ``name`` in the formats Tor reads."""
    if not NAME.fullmatch(name):
        raise ValueError("the name must be 1 to 64 letters, digits, - or _")
    address = None
    if onion is not None:
        address = onion.removesuffix(".onion")
        if not ONION.fullmatch(address):
            raise ValueError("the onion address must be 56 letters a-z and digits 2-7")
    private = X25519PrivateKey.generate()
    secret = b32(private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
    public = b32(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    client = f"{address}:descriptor:x25519:{secret}" if address else None
    return ClientKey(name, f"descriptor:x25519:{public}", secret, client)


def describe(key: ClientKey) -> str:
    """What the operator does with the key, step by step."""
    lines = [
        f"1. On the server, as root, write this line to"
        f" /var/lib/tor/portal-staff/authorized_clients/{key.name}.auth",
        "   (owner debian-tor, mode 0600), then: systemctl reload tor@default",
        f"   {key.server_line}",
        f"2. Give {key.name} this private key in person (never by e-mail or chat); Tor Browser",
        "   asks for it the first time the staff address is opened (shown only now):",
        f"   {key.private_key}",
    ]
    if key.client_line:
        lines += ["   or, for a system tor, as <ClientOnionAuthDir>/portal-staff.auth_private:",
                  f"   {key.client_line}"]  # fmt: skip
    lines.append(f"To revoke: delete {key.name}.auth on the server and reload tor.")
    return "\n".join(lines)
