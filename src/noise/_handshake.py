"""HandshakeState driven by a table of handshake patterns (Noise rev. 34 §5.3, §7).

A pattern is a list of pre-message tokens per side and a list of messages; each message is
a tuple of tokens, and messages alternate between initiator and responder, initiator
first. Tokens: ``e`` and ``s`` send (or read) a public key, ``ee``, ``es``, ``se`` and
``ss`` mix a DH output into the key (for ``es`` and ``se`` the roles swap: the first letter
names the initiator's key). After the last message, :meth:`HandshakeState.split` yields the
two transport CipherStates.

Keys are injected through the constructor. Ephemeral keys come from the OS RNG unless a
fixed one is passed, which only test-vector replays should do. Any DH or decrypt failure
moves the state to failed; every later call raises :class:`NoiseStateError`.
"""

from __future__ import annotations

from typing import Final

from ._suite import KeyPair, Suite, parse_protocol_name
from ._symmetric import CipherState, SymmetricState
from .errors import NoiseProtocolViolation, NoiseStateError

__all__ = ("PATTERNS", "HandshakePattern", "HandshakeState")


class HandshakePattern:
    """One row of the pattern table."""

    __slots__ = ("initiator_pre", "messages", "name", "responder_pre")

    def __init__(
        self,
        name: str,
        messages: tuple[tuple[str, ...], ...],
        initiator_pre: tuple[str, ...] = (),
        responder_pre: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.messages = messages
        self.initiator_pre = initiator_pre
        self.responder_pre = responder_pre


PATTERNS: Final[dict[str, HandshakePattern]] = {
    "NN": HandshakePattern("NN", (("e",), ("e", "ee"))),
    "XX": HandshakePattern("XX", (("e",), ("e", "ee", "s", "es"), ("s", "se"))),
    "IK": HandshakePattern(
        "IK", (("e", "es", "s", "ss"), ("e", "ee", "se")), responder_pre=("s",)
    ),
    "XK": HandshakePattern(
        "XK", (("e", "es"), ("e", "ee"), ("s", "se")), responder_pre=("s",)
    ),
}


class HandshakeState:
    """A Noise HandshakeState for one side of one handshake.

    :param protocol_name: the full name, e.g. ``Noise_XX_25519_ChaChaPoly_BLAKE2b``.
    :param initiator: the role.
    :param prologue: bytes both sides must agree on; mixed into ``h`` only.
    :param s: the local static key pair, when the pattern needs one.
    :param e: a fixed local ephemeral key pair (test vectors only); normally generated.
    :param rs: the remote static public key, when known in advance (IK, XK).
    """

    def __init__(
        self,
        protocol_name: str | bytes,
        *,
        initiator: bool,
        prologue: bytes = b"",
        s: KeyPair | None = None,
        e: KeyPair | None = None,
        rs: bytes | None = None,
    ) -> None:
        self.suite: Suite = parse_protocol_name(protocol_name)
        try:
            self.pattern = PATTERNS[self.suite.pattern]
        except KeyError:
            raise ValueError(f"unsupported handshake pattern {self.suite.pattern!r}") from None
        self.initiator = initiator
        self.s = s
        self.e = e
        self.rs = rs
        self.re: bytes | None = None
        self._symmetric = SymmetricState(self.suite.protocol_name, self.suite.hash)
        self._symmetric.mix_hash(prologue)
        self._message_index = 0
        self._failed = False
        pattern = self.pattern
        for token in pattern.initiator_pre:
            self._mix_pre_message(token, local=initiator)
        for token in pattern.responder_pre:
            self._mix_pre_message(token, local=not initiator)

    def _mix_pre_message(self, token: str, *, local: bool) -> None:
        if token != "s":
            raise ValueError(f"unsupported pre-message token {token!r}")
        if local:
            if self.s is None:
                raise ValueError("this pattern needs a local static key")
            key = self.s.public
        else:
            if self.rs is None:
                raise ValueError("this pattern needs the remote static key in advance")
            key = self.rs
        self._symmetric.mix_hash(key)

    # -- inspection --------------------------------------------------------------------

    @property
    def is_finished(self) -> bool:
        return self._message_index >= len(self.pattern.messages)

    @property
    def is_our_turn(self) -> bool:
        """True when the next message is ours to write."""
        return (self._message_index % 2 == 0) == self.initiator

    @property
    def handshake_hash(self) -> bytes:
        """``h``: the channel-binding value (final once the handshake is finished)."""
        return self._symmetric.h

    def next_message_size(self, payload_size: int = 0) -> int:
        """Exact size of the next message carrying a payload of ``payload_size`` bytes."""
        self._check_usable()
        dhlen = self.suite.dh.dhlen
        has_key = self._symmetric.cipher.has_key()
        size = 0
        for token in self.pattern.messages[self._message_index]:
            if token == "e":
                size += dhlen
            elif token == "s":
                size += dhlen + (16 if has_key else 0)
            else:
                has_key = True
        return size + payload_size + (16 if has_key else 0)

    # -- messages ----------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._failed:
            raise NoiseStateError("the handshake has failed")
        if self.is_finished:
            raise NoiseStateError("the handshake is finished")

    def _dh_token(self, token: str) -> bytes:
        dh = self.suite.dh
        ours, theirs = token[0], token[1]
        if not self.initiator:  # tokens name the initiator's key first
            ours, theirs = theirs, ours
        local = self.e if ours == "e" else self.s
        remote = self.re if theirs == "e" else self.rs
        if local is None or remote is None:
            raise NoiseStateError(f"missing key for token {token!r}")
        return dh.dh(local.private, remote)

    def write_message(self, payload: bytes = b"") -> bytes:
        """WriteMessage: the next handshake message, carrying ``payload``."""
        self._check_usable()
        if not self.is_our_turn:
            raise NoiseStateError("not our turn to write a handshake message")
        sym = self._symmetric
        out: list[bytes] = []
        try:
            for token in self.pattern.messages[self._message_index]:
                if token == "e":
                    if self.e is None:
                        self.e = self.suite.dh.generate_keypair()
                    out.append(self.e.public)
                    sym.mix_hash(self.e.public)
                elif token == "s":
                    if self.s is None:
                        raise NoiseStateError("this pattern needs a local static key")
                    out.append(sym.encrypt_and_hash(self.s.public))
                else:
                    sym.mix_key(self._dh_token(token))
            out.append(sym.encrypt_and_hash(payload))
        except Exception:
            self._failed = True
            raise
        self._message_index += 1
        return b"".join(out)

    def read_message(self, message: bytes) -> bytes:
        """ReadMessage: process the peer's next handshake message and return its payload.

        :raises NoiseProtocolViolation: a short message, an invalid key or a MAC failure.
        """
        self._check_usable()
        if self.is_our_turn:
            raise NoiseStateError("not our turn to read a handshake message")
        sym = self._symmetric
        dhlen = self.suite.dh.dhlen
        view = memoryview(message)
        try:
            for token in self.pattern.messages[self._message_index]:
                if token == "e":
                    if len(view) < dhlen:
                        raise NoiseProtocolViolation("handshake message too short for 'e'")
                    self.re = bytes(view[:dhlen])
                    view = view[dhlen:]
                    sym.mix_hash(self.re)
                elif token == "s":
                    size = dhlen + (16 if sym.cipher.has_key() else 0)
                    if len(view) < size:
                        raise NoiseProtocolViolation("handshake message too short for 's'")
                    self.rs = sym.decrypt_and_hash(bytes(view[:size]))
                    view = view[size:]
                else:
                    sym.mix_key(self._dh_token(token))
            payload = sym.decrypt_and_hash(bytes(view))
        except Exception:
            self._failed = True
            raise
        self._message_index += 1
        return payload

    def split(self) -> tuple[CipherState, CipherState]:
        """The transport cipher states ``(sending, receiving)`` for this side."""
        if self._failed or not self.is_finished:
            raise NoiseStateError("split before the handshake finished")
        c1, c2 = self._symmetric.split()
        return (c1, c2) if self.initiator else (c2, c1)
