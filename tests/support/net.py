"""Real TCP on 127.0.0.1 for adapter tests: the benchmark's own helpers (plait.bench._net)."""
from __future__ import annotations

from plait.bench._net import noise_pair, receive_exactly, tcp_pair

__all__ = ("noise_pair", "receive_exactly", "tcp_pair")
