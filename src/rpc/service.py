"""Declaring RPC services and their typed clients (wire.md §3.11, §3.14; api.md).

A service is a subclass of :class:`Service` naming its protocol id as a class keyword, whose
methods are marked with :func:`rpc`::

    class Greeting(Service, protocol="/plait/greeting/1"):
        @rpc(method=1)
        async def say_hello(
            self, request: SayHelloRequest, ctx: RequestContext
        ) -> SayHelloResponse: ...

        @rpc(method=3, streaming=True)
        async def get_greetings(
            self, request: GetGreetingsRequest, ctx: RequestContext
        ) -> AsyncIterator[Text]: ...

Method numbers are fixed per method, must be above 0 and unique (tari ``rpc_macros``). The
request and response message types come from the annotations (resolved when the class is
created, so import them at run time) or from ``@rpc(request=..., response=...)``. A unary
method is a coroutine returning the response message; a streaming method is an async
generator yielding items (raising :class:`~plait.rpc.RpcStatusError` before the first item
sends one error reply, after some items ends the stream with that error).

Each service class gets a ``Client`` class: a :class:`ServiceClient` with one method per RPC
method, ``await client.say_hello(request)`` for unary methods and ``async for item in
client.get_greetings(request)`` for streaming ones. A service may define its own typed
``Client`` (a :class:`ServiceClient` subclass); otherwise one is generated.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from google.protobuf.message import Message

from .client import ResponseStream, RpcClient

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType
    from typing import Self

    from anyio.abc import ByteStream

    from .config import RpcClientConfig

__all__ = ("MethodInfo", "RequestContext", "Service", "ServiceClient", "rpc")

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=Message)

_RPC_MARK = "__plait_rpc__"


@dataclass(frozen=True, slots=True)
class _Mark:
    method: int
    streaming: bool
    request: type[Message] | None
    response: type[Message] | None


def rpc(
    *,
    method: int,
    streaming: bool = False,
    request: type[Message] | None = None,
    response: type[Message] | None = None,
) -> Callable[[F], F]:
    """Mark a :class:`Service` method as RPC method number ``method``.

    :param method: the method number on the wire, 1..2**32-1.
    :param streaming: whether the method is an async generator of items.
    :param request: the request message type, if not given by the annotation.
    :param response: the response (or item) message type, if not given by the annotation.
    """
    if not 0 < method <= 0xFFFFFFFF:
        raise ValueError("RPC method numbers must be within 1..2**32-1")

    def decorate(func: F) -> F:
        setattr(func, _RPC_MARK, _Mark(method, streaming, request, response))
        return func

    return decorate


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodInfo:
    """One RPC method of a service."""

    number: int
    """The method number on the wire."""
    name: str
    """The Python method name (on the service and on its client)."""
    streaming: bool
    """Whether replies are a stream of items."""
    request_type: type[Message]
    """The request message type."""
    response_type: type[Message]
    """The response message type (each item's, for a stream)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestContext:
    """What a service method knows about the call besides its request."""

    request_id: int
    """The client's request id."""
    method: int
    """The method number."""
    peer_key: bytes
    """The calling peer's 32-byte public key (its identity)."""
    protocol: bytes
    """The negotiated protocol id."""
    deadline: float
    """Seconds the call (and then each stream item) may take."""

    @property
    def peer_id(self) -> str:
        """The calling peer's id: the lower-case hex of its public key."""
        return self.peer_key.hex()


def _message_type(hint: object, where: str) -> type[Message]:
    if isinstance(hint, type) and issubclass(hint, Message):
        return hint
    raise TypeError(f"{where} must be a protobuf message type, not {hint!r}")


def _item_type(hint: object, where: str) -> type[Message]:
    origin = typing.get_origin(hint)
    if origin in (AsyncIterator, AsyncGenerator, typing.AsyncIterator, typing.AsyncGenerator):
        return _message_type(typing.get_args(hint)[0], where)
    raise TypeError(f"{where} must be AsyncIterator[<message type>], not {hint!r}")


def _method_info(name: str, func: Callable[..., Any], mark: _Mark) -> MethodInfo:
    where = f"RPC method {func.__qualname__}"
    if mark.streaming and not inspect.isasyncgenfunction(func):
        raise TypeError(f"{where} is streaming and must be an async generator function")
    if not mark.streaming and not inspect.iscoroutinefunction(func):
        raise TypeError(f"{where} must be an async function")
    request, response = mark.request, mark.response
    if request is None or response is None:
        params = list(inspect.signature(func).parameters)
        if len(params) != 3:
            raise TypeError(f"{where} must take (self, request, ctx)")
        try:
            hints = typing.get_type_hints(
                func,
                localns={
                    "RequestContext": RequestContext,
                    "AsyncIterator": AsyncIterator,
                    "AsyncGenerator": AsyncGenerator,
                },
            )
        except NameError as exc:
            raise TypeError(
                f"{where}: cannot resolve its annotations ({exc}); import the message types "
                "at run time or pass request=/response= to @rpc"
            ) from exc
        if request is None:
            request = _message_type(hints.get(params[1]), f"{where} request")
        if response is None:
            returned = hints.get("return")
            response = (
                _item_type(returned, f"{where} return")
                if mark.streaming
                else _message_type(returned, f"{where} return")
            )
    return MethodInfo(
        number=mark.method,
        name=name,
        streaming=mark.streaming,
        request_type=request,
        response_type=response,
    )


class ServiceClient:
    """The client side of a service over one RPC session.

    :param session: an open session to a peer serving the service's protocol.
    """

    service: ClassVar[type[Service]]
    """The service this client calls."""

    def __init__(self, session: RpcClient) -> None:
        self._session = session

    @classmethod
    async def connect(cls, stream: ByteStream, *, config: RpcClientConfig | None = None) -> Self:
        """Open a session on a stream already negotiated for ``service.protocol``."""
        return cls(await RpcClient.connect(stream, config=config, protocol=cls.service.protocol))

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} {self._session!r}>"

    @property
    def session(self) -> RpcClient:
        """The underlying session (raw ``request``/``stream_request`` by method number)."""
        return self._session

    @property
    def is_connected(self) -> bool:
        """``False`` once the session was closed, ended by the server, or failed."""
        return self._session.is_connected

    @property
    def last_request_latency(self) -> float | None:
        """Seconds: the handshake round trip, then the wait for the latest response frame."""
        return self._session.last_request_latency

    async def ping(self) -> float:
        """Round trip of a ping, in seconds."""
        return await self._session.ping()

    async def aclose(self) -> None:
        """Close the session and its substream (idempotent); frees the server's slot."""
        await self._session.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _unary(self, method: int, request: Message, response_type: type[M]) -> M:
        payload = await self._session.request(method, request.SerializeToString())
        return response_type.FromString(payload)

    def _server_streaming(
        self, method: int, request: Message, item_type: type[M]
    ) -> ResponseStream[M]:
        return self._session.stream_request(
            method, request.SerializeToString(), item_type.FromString
        )


def _client_method(info: MethodInfo) -> Callable[..., Any]:
    number, response_type = info.number, info.response_type
    if info.streaming:

        def stream_call(self: ServiceClient, request: Message) -> ResponseStream[Message]:
            return self._server_streaming(number, request, response_type)

        call: Callable[..., Any] = stream_call
    else:

        async def unary_call(self: ServiceClient, request: Message) -> Message:
            return await self._unary(number, request, response_type)

        call = unary_call
    call.__name__ = call.__qualname__ = info.name
    call.__doc__ = f"Call RPC method {number} ({'streaming' if info.streaming else 'unary'})."
    return call


class Service:
    """Base class of RPC services; subclass with ``protocol="/my/proto/1"``."""

    protocol: ClassVar[bytes] = b""
    """The protocol id the service is served on."""
    methods: ClassVar[Mapping[int, MethodInfo]] = MappingProxyType({})
    """The RPC methods by number."""
    Client: ClassVar[type[ServiceClient]]
    """The client class for this service."""

    def __init_subclass__(cls, *, protocol: str | bytes | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if protocol is not None:
            cls.protocol = protocol.encode() if isinstance(protocol, str) else bytes(protocol)
        methods = dict(cls.methods)
        for name, member in vars(cls).items():
            mark = getattr(member, _RPC_MARK, None)
            if not isinstance(mark, _Mark):
                continue
            if mark.method in methods and methods[mark.method].name != name:
                raise TypeError(
                    f"{cls.__qualname__}: method number {mark.method} is used by both "
                    f"{methods[mark.method].name} and {name}"
                )
            methods[mark.method] = _method_info(name, member, mark)
        cls.methods = MappingProxyType(methods)
        client: type[ServiceClient] | None = vars(cls).get("Client")
        if client is None:
            namespace: dict[str, Any] = {
                info.name: _client_method(info) for info in methods.values()
            }
            namespace["__module__"] = cls.__module__
            namespace["__qualname__"] = f"{cls.__qualname__}.Client"
            client = type("Client", (ServiceClient,), namespace)
        elif not (isinstance(client, type) and issubclass(client, ServiceClient)):
            raise TypeError(f"{cls.__qualname__}.Client must be a ServiceClient subclass")
        client.service = cls
        cls.Client = client

    def method(self, number: int) -> tuple[MethodInfo, Callable[..., Any]] | None:
        """The method registered under ``number`` and its bound implementation."""
        info = self.methods.get(number)
        if info is None:
            return None
        return info, getattr(self, info.name)
