"""The built-in Greeting RPC service on ``/plait/greeting/1`` (api.md; wire.md §6).

It mirrors tari's unit-test greeting service (``protocol/rpc/test/greeting_service.rs``):
the same method numbers, behaviour and error texts, with a protobuf wrapper message for every
request and response, each encoding like the bare value tari sends (wire.md §3.14). It serves
the node's demo, the command line's ``plait call`` and the ports of tari's RPC tests.

Two guards tari lacks: ``reply_with_msg_of_size`` and ``slow_stream`` refuse sizes above
``max_reply_size`` (so a remote number cannot make the server allocate gigabytes,
hardening.md §1.10), with ``BAD_REQUEST``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import anyio

from .config import RPC_MAX_FRAME_SIZE
from .errors import RpcStatusError
from .proto.greeting_pb2 import (
    Blob,
    Empty,
    GetGreetingsRequest,
    ReplySizeRequest,
    SayHelloRequest,
    SayHelloResponse,
    SlowStreamRequest,
    Text,
)
from .service import RequestContext, Service, ServiceClient, rpc
from .status import StatusCode

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from .client import ResponseStream

__all__ = ("DEFAULT_GREETINGS", "GREETING_PROTOCOL", "Greeting", "GreetingClient")

GREETING_PROTOCOL = b"/plait/greeting/1"
DEFAULT_GREETINGS = ("Sawubona", "Jambo", "Bonjour", "Hello", "Molo", "Olá", "سلام", "你好")
"""tari's default greetings, indexed by ``SayHelloRequest.language``."""


class GreetingClient(ServiceClient):
    """Typed client of :class:`Greeting`."""

    async def say_hello(self, request: SayHelloRequest) -> SayHelloResponse:
        return await self._unary(1, request, SayHelloResponse)

    async def return_error(self, request: Empty | None = None) -> Empty:
        return await self._unary(2, request or Empty(), Empty)

    def get_greetings(self, request: GetGreetingsRequest) -> ResponseStream[Text]:
        return self._server_streaming(3, request, Text)

    def streaming_error(self, request: Text) -> ResponseStream[Text]:
        return self._server_streaming(4, request, Text)

    def streaming_error2(self, request: Empty | None = None) -> ResponseStream[Text]:
        return self._server_streaming(5, request or Empty(), Text)

    async def get_public_key_hex(self, request: Empty | None = None) -> Text:
        return await self._unary(6, request or Empty(), Text)

    async def reply_with_msg_of_size(self, request: ReplySizeRequest) -> Blob:
        return await self._unary(7, request, Blob)

    def slow_stream(self, request: SlowStreamRequest) -> ResponseStream[Blob]:
        return self._server_streaming(8, request, Blob)


class Greeting(Service, protocol=GREETING_PROTOCOL):
    """tari's greeting service, method for method.

    :param greetings: the greetings ``say_hello`` and ``get_greetings`` use.
    :param max_reply_size: the largest ``size`` / ``item_size`` accepted, in bytes.
    """

    Client: ClassVar[type[GreetingClient]] = GreetingClient

    def __init__(
        self,
        greetings: Sequence[str] = DEFAULT_GREETINGS,
        *,
        max_reply_size: int = 2 * RPC_MAX_FRAME_SIZE,
    ) -> None:
        self.greetings = tuple(greetings)
        self.max_reply_size = max_reply_size

    @rpc(method=1)
    async def say_hello(self, request: SayHelloRequest, ctx: RequestContext) -> SayHelloResponse:
        if request.language >= len(self.greetings):
            raise RpcStatusError(
                StatusCode.BAD_REQUEST,
                f"`{request.language}` is not a valid language identifier",
            )
        return SayHelloResponse(greeting=f"{self.greetings[request.language]} {request.name}")

    @rpc(method=2)
    async def return_error(self, request: Empty, ctx: RequestContext) -> Empty:
        raise RpcStatusError(StatusCode.NOT_IMPLEMENTED, "I haven't gotten to this yet :(")

    @rpc(method=3, streaming=True)
    async def get_greetings(
        self, request: GetGreetingsRequest, ctx: RequestContext
    ) -> AsyncIterator[Text]:
        for greeting in self.greetings[: request.num]:
            yield Text(value=greeting)

    @rpc(method=4, streaming=True)
    async def streaming_error(self, request: Text, ctx: RequestContext) -> AsyncIterator[Text]:
        for _ in ():  # an async generator that fails before its first item
            yield Text()
        raise RpcStatusError(StatusCode.BAD_REQUEST, f"What does '{request.value}' mean?")

    @rpc(method=5, streaming=True)
    async def streaming_error2(self, request: Empty, ctx: RequestContext) -> AsyncIterator[Text]:
        yield Text(value="This is ok")
        raise RpcStatusError(StatusCode.BAD_REQUEST, "This is a problem")

    @rpc(method=6)
    async def get_public_key_hex(self, request: Empty, ctx: RequestContext) -> Text:
        return Text(value=ctx.peer_key.hex())

    @rpc(method=7)
    async def reply_with_msg_of_size(self, request: ReplySizeRequest, ctx: RequestContext) -> Blob:
        self._check_size(request.size)
        return Blob(data=bytes(request.size))

    @rpc(method=8, streaming=True)
    async def slow_stream(
        self, request: SlowStreamRequest, ctx: RequestContext
    ) -> AsyncIterator[Blob]:
        self._check_size(request.item_size)
        item = Blob(data=bytes(request.item_size))
        for _ in range(request.num_items):
            await anyio.sleep(request.delay_ms / 1000)
            yield item

    def _check_size(self, size: int) -> None:
        if size > self.max_reply_size:
            raise RpcStatusError(
                StatusCode.BAD_REQUEST,
                f"{size} bytes is above this server's limit of {self.max_reply_size}",
            )
