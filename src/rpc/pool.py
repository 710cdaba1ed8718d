"""anyio adapter: a bounded pool of client sessions to one peer (wire.md §3.13).

:class:`RpcClientPool` applies the decisions of :class:`~plait.rpc.PoolState` and does the
I/O outside it: opening a session (through the ``connect`` callable the node supplies: open a
substream, negotiate, :meth:`RpcClient.connect`) happens without holding any lock, the new
session counting toward ``size`` while it opens. ``async with pool.lease() as client:``
hands out a typed service client; the lease ends with the block.

A shared pool (the default) never waits for a lease: it reuses an idle session, opens one
while below ``size``, else shares the least-leased session; a server rejection with reason 2
or 3 falls back to an existing session, and the pool opens no more sessions than the server
admitted until one of its sessions closes (see :mod:`~plait.rpc._pool_state`). An exclusive
pool gives each session to one lease at a time; waiters sleep in FIFO order: a released lease
wakes one of them, any other change (an open finished or failed, sessions pruned, the pool
closed) wakes them all; after ``acquire_timeout`` a waiter gets
``RpcHandshakeRejected(NO_CLIENT_SESSIONS_AVAILABLE)``. Sessions found closed are pruned.
When the node's connection to the peer is gone (the ``is_connected`` callable says so), every
lease fails with :class:`~plait.rpc.SessionClosedError` and the pool's sessions are pruned
(tari ``PeerConnectionDropped``).
"""

from __future__ import annotations

import logging
from collections import deque
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Generic, TypeVar

import anyio

from ._pool_state import (
    FailAcquire,
    LeaseSession,
    OpenSession,
    PoolAction,
    PoolState,
    PoolStatistics,
    WaitForRelease,
)
from .config import PoolConfig
from .errors import RpcHandshakeRejected, SessionClosedError
from .service import ServiceClient
from .status import RejectReason

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from .client import RpcClient

__all__ = ("RpcClientPool",)

logger = logging.getLogger(__name__)

C = TypeVar("C", bound=ServiceClient)


class RpcClientPool(Generic[C]):
    """Leases typed clients over at most ``config.size`` sessions to one peer.

    :param connect: opens one new session to the peer (raises ``RpcHandshakeRejected`` when
        the server refuses).
    :param client_class: the service client to wrap each session in (``Greeting.Client``).
    :param config: size, exclusivity and the exclusive acquire timeout.
    :param is_connected: says whether the underlying connection to the peer is still up;
        checked before every lease (default: always up).
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[RpcClient]],
        client_class: type[C],
        config: PoolConfig | None = None,
        *,
        is_connected: Callable[[], bool] | None = None,
    ) -> None:
        self._connect = connect
        self._is_connected = is_connected
        self._client_class = client_class
        self._config = config or PoolConfig()
        self._state = PoolState(self._config)
        self._clients: dict[int, C] = {}
        self._waiters: deque[anyio.Event] = deque()

    def __repr__(self) -> str:
        return f"<RpcClientPool {self._client_class.__qualname__} {self._state!r}>"

    @property
    def config(self) -> PoolConfig:
        """Size, exclusivity and the exclusive acquire timeout."""
        return self._config

    def statistics(self) -> PoolStatistics:
        """Open, opening, idle sessions and leases right now."""
        return self._state.statistics()

    def lease_count(self, client: C) -> int:
        """Leases held now on ``client``'s session (0 if it is not, or no longer, in the
        pool); tari's ``RpcClientLease::lease_count`` without the pool's own copy."""
        for session_id, pooled in self._clients.items():
            if pooled is client:
                return self._state.lease_count(session_id)
        return 0

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[C]:
        """Lease a client for the duration of the block.

        :raises RpcHandshakeRejected: the server refused and no session exists, or an
            exclusive pool found none free within ``acquire_timeout``.
        :raises SessionClosedError: the pool is closed, or the connection to the peer is
            gone.
        """
        session_id = await self._acquire()
        try:
            yield self._clients[session_id]
        finally:
            self._state.release(session_id)
            self._wake_one()

    async def aclose(self) -> None:
        """Close every session; later leases fail (leases in use keep their client until
        its session notices the close)."""
        for session_id in self._state.close():
            client = self._clients.pop(session_id, None)
            if client is not None:
                await client.aclose()
        self._notify()

    # -- internals ------------------------------------------------------------------------

    def _wake_one(self) -> None:
        """A lease was released: one waiter can have it."""
        if self._waiters:
            self._waiters.popleft().set()

    def _notify(self) -> None:
        """The pool changed otherwise: every waiter decides again."""
        waiters, self._waiters = self._waiters, deque()
        for event in waiters:
            event.set()

    async def _wait(self) -> None:
        event = anyio.Event()
        self._waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():  # woken just as we gave up: pass the wake-up on
                self._wake_one()
            else:
                self._waiters.remove(event)
            raise

    async def _acquire(self) -> int:
        if not self._config.exclusive:
            return await self._acquire_loop()
        try:
            with anyio.fail_after(self._config.acquire_timeout):
                return await self._acquire_loop()
        except TimeoutError:
            raise RpcHandshakeRejected(
                RejectReason.NO_CLIENT_SESSIONS_AVAILABLE,
                f"no free RPC session within {self._config.acquire_timeout}s",
            ) from None

    async def _acquire_loop(self) -> int:
        while True:
            if self._is_connected is not None and not self._is_connected():
                await self._drop_all()
                raise SessionClosedError("the connection to the peer was dropped")
            action: PoolAction = self._state.acquire()
            if isinstance(action, OpenSession):
                action = await self._open(action.session_id)
            if isinstance(action, LeaseSession):
                if self._clients[action.session_id].is_connected:
                    return action.session_id
                self._state.release(action.session_id)
                await self._prune()
            elif isinstance(action, WaitForRelease):
                await self._wait()
            else:  # FailAcquire is only returned by _open, which raises instead
                raise AssertionError(action)

    async def _open(self, session_id: int) -> PoolAction:
        try:
            session = await self._connect()
        except RpcHandshakeRejected as exc:
            fallback = self._state.session_failed(session_id, exc.reason)
            self._notify()
            if isinstance(fallback, FailAcquire):
                raise
            logger.debug("RPC pool: server refused a session (%s), reusing one", exc.reason.name)
            return fallback
        except BaseException:
            self._state.session_failed(session_id, None)
            self._notify()
            raise
        self._clients[session_id] = self._client_class(session)
        leased = self._state.session_opened(session_id)
        self._notify()
        return leased

    async def _drop_all(self) -> None:
        """The connection is gone: forget and close every open session."""
        for session_id in self._state.session_ids:
            self._state.remove_session(session_id)
            client = self._clients.pop(session_id)
            await client.aclose()
        self._notify()

    async def _prune(self) -> None:
        for session_id in self._state.session_ids:
            client = self._clients[session_id]
            if not client.is_connected:
                self._state.remove_session(session_id)
                del self._clients[session_id]
                await client.aclose()
        self._notify()
