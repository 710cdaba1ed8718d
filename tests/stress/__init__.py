"""Stress scenarios: ports of tari_comms' rpc_stress and substream_stress (wire.md §6.5).

Every scenario has a quick variant in the default suite and a full-size variant marked
``stress`` (``make stress``).
"""
