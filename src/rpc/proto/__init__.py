"""plait.rpc.proto."""

from __future__ import annotations

__all__: tuple[str, ...] = ()
