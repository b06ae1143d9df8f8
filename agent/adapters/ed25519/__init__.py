"""Ed25519 through PyNaCl (libsodium): verify for the terminal, keys and signing for the county.

PyNaCl rather than ``cryptography``: measured here (``scripts/bench/crypto_choice.py``) its
import adds about 2.3 MB of RSS against 9.5 MB, and a verify takes about half the time; Debian 12
ships it as ``python3-nacl`` 1.5, whose ``nacl.signing`` API is the one used here. It is imported
on first use, so an agent that never sees a signed document never loads it.

No other adapter imports this package; the runtime hands ``verify`` to the domain's checks.
"""

from __future__ import annotations

from typing import Any

_nacl: Any = None


def _signing() -> Any:
    global _nacl
    if _nacl is None:
        import nacl.exceptions
        import nacl.signing

        _nacl = nacl
    return _nacl


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is ``public_key``'s Ed25519 signature of ``message``.

    Never raises for bad input: a key or signature of the wrong size, or a point that is not on
    the curve, is simply a signature that does not hold.
    """
    if len(public_key) != 32 or len(signature) != 64:
        return False
    nacl = _signing()
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
        return False
    return True


def generate() -> tuple[bytes, bytes]:
    """A new key pair: (32-byte private seed, 32-byte public key)."""
    nacl = _signing()
    key = nacl.signing.SigningKey.generate()
    return bytes(key), bytes(key.verify_key)


def public_of(seed: bytes) -> bytes:
    return bytes(_signing().signing.SigningKey(seed).verify_key)


def sign(seed: bytes, message: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``message`` by the private key ``seed``."""
    return bytes(_signing().signing.SigningKey(seed).sign(message).signature)
