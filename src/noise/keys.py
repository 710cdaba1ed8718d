"""Static key pairs for Noise (X25519)."""

from __future__ import annotations

from dataclasses import dataclass

from ._suite import X25519, KeyPair

__all__ = ("StaticKeypair",)


@dataclass(frozen=True, slots=True, repr=False)
class StaticKeypair:
    """An X25519 static key pair: the node's long-term Noise key.

    The private half never appears in ``repr``.
    """

    private: bytes
    """The 32-byte private key."""
    public: bytes
    """The 32-byte public key, derived from :attr:`private`."""

    @classmethod
    def generate(cls) -> StaticKeypair:
        """A fresh key pair from the OS RNG."""
        pair = X25519.generate_keypair()
        return cls(pair.private, pair.public)

    @classmethod
    def from_private_bytes(cls, private: bytes) -> StaticKeypair:
        """The key pair of a 32-byte X25519 private key.

        :raises ValueError: the key is not 32 bytes.
        """
        pair = X25519.keypair_from_private(bytes(private))
        return cls(pair.private, pair.public)

    def as_keypair(self) -> KeyPair:
        return KeyPair(self.private, self.public)

    def __repr__(self) -> str:
        return f"StaticKeypair(public={self.public.hex()})"
