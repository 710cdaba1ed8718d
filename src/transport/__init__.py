"""plait.transport: transports, the network byte and the identity exchange."""

from __future__ import annotations

from .errors import BanTier as BanTier

__all__ = ("BanTier",)
