"""Status codes, reject reasons, flags, errors and configuration validation."""

from __future__ import annotations

import dataclasses

import pytest
from plait import PlaitError, ProtocolViolation
from plait.rpc.config import (
    RPC_MAX_FRAME_SIZE,
    PoolConfig,
    RpcClientConfig,
    RpcServerConfig,
    max_response_payload_size,
)
from plait.rpc.errors import (
    RequestTooLargeError,
    RpcDeadlineExceeded,
    RpcError,
    RpcHandshakeRejected,
    RpcProtocolViolation,
    RpcStateError,
    RpcStatusError,
    SessionClosedError,
)
from plait.rpc.proto.rpc_pb2 import RpcSessionReply
from plait.rpc.status import RejectReason, RpcFlags, RpcStatus, StatusCode


def test_status_code_table() -> None:
    assert {c.name: c.value for c in StatusCode} == {
        "OK": 0,
        "BAD_REQUEST": 1,
        "UNSUPPORTED_METHOD": 2,
        "NOT_IMPLEMENTED": 3,
        "TIMEOUT": 4,
        "MALFORMED_RESPONSE": 5,
        "GENERAL": 6,
        "NOT_FOUND": 7,
        "PROTOCOL_ERROR": 8,
        "FORBIDDEN": 9,
        "CONFLICT": 10,
    }
    assert StatusCode.is_valid(10)
    assert not StatusCode.is_valid(11)
    assert not StatusCode.is_valid(123)


def test_reject_reasons_match_the_protobuf_enum() -> None:
    proto = RpcSessionReply.HandshakeRejectReason
    for reason in RejectReason:
        assert proto.Name(reason.value) == f"HANDSHAKE_REJECT_REASON_{reason.name}"
    assert RejectReason.from_wire(3) is RejectReason.NO_CLIENT_SESSIONS_AVAILABLE
    assert RejectReason.from_wire(77) is RejectReason.UNKNOWN


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (0, True),
        (1, True),
        (2, True),
        (3, True),
        (4, False),
        (0x80, False),
        (0x101, False),
        (-1, False),
    ],
)
def test_flags_validity(value: int, valid: bool) -> None:
    assert RpcFlags.is_valid(value) is valid
    assert (RpcFlags.FIN, RpcFlags.ACK) == (1, 2)


def test_rpc_status_factories() -> None:
    assert RpcStatus.ok().is_ok
    cases = {
        RpcStatus.bad_request: StatusCode.BAD_REQUEST,
        RpcStatus.unsupported_method: StatusCode.UNSUPPORTED_METHOD,
        RpcStatus.not_implemented: StatusCode.NOT_IMPLEMENTED,
        RpcStatus.timed_out: StatusCode.TIMEOUT,
        RpcStatus.general: StatusCode.GENERAL,
        RpcStatus.not_found: StatusCode.NOT_FOUND,
        RpcStatus.forbidden: StatusCode.FORBIDDEN,
        RpcStatus.conflict: StatusCode.CONFLICT,
    }
    for factory, code in cases.items():
        status = factory("d")
        assert (status.code, status.details, status.is_ok) == (code, "d", False)


def test_error_hierarchy() -> None:
    for cls in (
        RpcHandshakeRejected,
        RpcStatusError,
        SessionClosedError,
        RpcProtocolViolation,
        RequestTooLargeError,
        RpcStateError,
    ):
        assert issubclass(cls, RpcError)
    assert issubclass(RpcError, PlaitError)
    assert issubclass(RpcProtocolViolation, ProtocolViolation)
    assert issubclass(RpcStateError, RuntimeError)
    timeout = RpcDeadlineExceeded()
    assert isinstance(timeout, TimeoutError)
    assert isinstance(timeout, RpcStatusError)
    assert timeout.code is StatusCode.TIMEOUT
    assert timeout.details == "Response timed out"


def test_status_error_carries_code_and_details() -> None:
    error = RpcStatusError(StatusCode.NOT_FOUND, "missing")
    assert (error.code, error.details, str(error)) == (
        StatusCode.NOT_FOUND,
        "missing",
        "NOT_FOUND: missing",
    )
    assert error.status == RpcStatus.not_found("missing")
    assert RpcStatusError.from_status(RpcStatus.conflict("c")).code is StatusCode.CONFLICT
    with pytest.raises(ValueError, match="non-OK"):
        RpcStatusError(StatusCode.OK)


def test_handshake_rejected_carries_the_reason() -> None:
    error = RpcHandshakeRejected(RejectReason.NO_SERVER_SESSIONS_AVAILABLE)
    assert error.reason is RejectReason.NO_SERVER_SESSIONS_AVAILABLE
    assert "NO_SERVER_SESSIONS_AVAILABLE" in str(error)


def test_defaults_follow_tari_code_values() -> None:
    client = RpcClientConfig()
    assert (client.deadline, client.deadline_grace_period, client.handshake_timeout) == (
        120.0,
        60.0,
        90.0,
    )
    assert client.wire_deadline == 120
    assert client.response_timeout == 180.0
    assert RpcClientConfig(deadline=None).wire_deadline == 0
    assert RpcClientConfig(deadline=None).response_timeout is None
    server = RpcServerConfig()
    assert (server.max_sessions, server.max_sessions_per_peer) == (100, 10)
    assert (server.min_deadline, server.handshake_timeout) == (1.0, 15.0)
    assert server.max_frame_size == RPC_MAX_FRAME_SIZE == 4194304
    assert max_response_payload_size(RPC_MAX_FRAME_SIZE) == 4194280
    assert PoolConfig().size == 1


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (RpcServerConfig, {"max_sessions": -1}),
        (RpcServerConfig, {"max_sessions_per_peer": -1}),
        (RpcServerConfig, {"handshake_timeout": 0}),
        (RpcServerConfig, {"max_concurrent_handshakes": 0}),
        (RpcServerConfig, {"min_deadline": -1}),
        (RpcServerConfig, {"min_deadline": 10, "max_deadline": 5}),
        (RpcServerConfig, {"max_frame_size": 24}),
        (RpcServerConfig, {"max_frame_size": 2**32}),
        (RpcServerConfig, {"supported_versions": ()}),
        (RpcClientConfig, {"deadline": -1}),
        (RpcClientConfig, {"deadline_grace_period": -1}),
        (RpcClientConfig, {"handshake_timeout": 0}),
        (RpcClientConfig, {"max_stale_responses": -1}),
        (RpcClientConfig, {"supported_versions": (-1,)}),
        (PoolConfig, {"size": 0}),
        (PoolConfig, {"acquire_timeout": 0}),
    ],
)
def test_invalid_configuration_is_refused(cls: type, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        cls(**kwargs)


def test_configs_are_frozen_and_keyword_only() -> None:
    config = RpcServerConfig(max_sessions=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_sessions = 5  # type: ignore[misc]
    assert dataclasses.replace(config, max_sessions=None).max_sessions is None
    with pytest.raises(TypeError):
        RpcServerConfig(5)  # type: ignore[misc]
