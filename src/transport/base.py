"""The transport interface: listen on an address, dial an address, get anyio byte streams.

A :class:`Transport` turns :mod:`~plait.transport.address` values into
``anyio.abc.ByteStream`` objects and knows nothing above that: the network byte, Noise,
the identity exchange and Yamux are layered on the streams by the upgrader. Two
implementations exist: :class:`~plait.transport.TcpTransport` (``tcp://``) and
:class:`~plait.transport.MemoryNetwork` (``memory://``, in-process).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
from anyio.abc import ByteStream, Listener

if TYPE_CHECKING:
    from collections.abc import Callable

    from anyio.abc import TaskGroup

    from .address import TransportAddress

__all__ = ("Transport", "TransportListener")


class TransportListener(Listener[ByteStream]):
    """An open listener: accepts inbound byte streams on :attr:`address`."""

    @property
    @abstractmethod
    def address(self) -> TransportAddress:
        """The bound address (a TCP port 0 is replaced by the port the OS chose)."""

    @abstractmethod
    async def accept(self) -> ByteStream:
        """Wait for and return the next inbound connection.

        :raises anyio.ClosedResourceError: if the listener is (or gets) closed.
        """

    async def serve(
        self, handler: Callable[[ByteStream], Any], task_group: TaskGroup | None = None
    ) -> None:
        """Accept forever, running ``handler(stream)`` in a new task for each connection.

        :param task_group: where to start handler tasks; an own task group when omitted.
        """
        async with AsyncExitStack() as stack:
            if task_group is None:
                task_group = await stack.enter_async_context(anyio.create_task_group())
            while True:
                stream = await self.accept()
                task_group.start_soon(handler, stream)


class Transport(ABC):
    """Dial and listen on one address scheme."""

    scheme: ClassVar[str]
    """The address scheme this transport serves (``"tcp"``, ``"memory"``)."""

    @abstractmethod
    async def listen(self, address: str | TransportAddress) -> TransportListener:
        """Start listening on ``address``.

        :raises InvalidAddressError: if the address is malformed or of another scheme.
        :raises ListenError: if it cannot be bound (in use, not permitted).
        """

    @abstractmethod
    async def dial(self, address: str | TransportAddress) -> ByteStream:
        """Open a connection to ``address``.

        :raises InvalidAddressError: if the address is malformed or of another scheme.
        :raises DialError: if nothing accepts the connection.
        """
