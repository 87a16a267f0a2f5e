"""The relay's view of a WebSocket, and that view over ``picows`` for both legs.

The relay core (:mod:`callflow_bridge.relay`, :mod:`callflow_bridge.phone_leg`,
:mod:`callflow_bridge.agent_leg`) talks to :class:`MessageSocket` only: whole messages in
(``str`` for text, ``bytes`` for binary), whole messages out, a close with a code and reason, and
the peer's close code and reason afterwards. :class:`SocketClosed` is how a closed socket shows.

:class:`PicowsSocket` implements it on ``picows`` (frame parsing, framing and masking in Cython,
one callback per frame) with the behaviour the bridge relied on from ``websockets``:

- fragmented messages are reassembled, and a message over the size limit closes 1009; text that is
  not UTF-8 closes 1007;
- a ``ping`` is answered at once (``picows``' auto-pong); the socket itself pings every
  :data:`KEEPALIVE_S` and drops a peer that does not answer within as long;
- ``close_code`` / ``close_reason`` are what the peer's CLOSE frame said (1005 for a CLOSE without
  a code, 1006 when the connection ended without one), and ``None`` / ``""`` until the connection
  is closed;
- a peer's CLOSE is answered with the same code and the TCP connection closed; our own
  :meth:`PicowsSocket.close` waits up to :data:`CLOSE_TIMEOUT_S` for the peer's answer;
- :meth:`PicowsSocket.send` waits while the transport's write buffer is over its high-water mark
  (backpressure), and raises :class:`SocketClosed` once a CLOSE was sent or the connection is gone.

Messages are handed over in order through a queue without a lock: ``picows`` calls
:meth:`PicowsSocket.on_ws_frame` from the event loop, and the one reader awaits a future only
when the queue is empty.

The hot path skips even that. A reader may set :attr:`PicowsSocket.dispatch`: a message that
arrives while the reader is parked on an empty queue (so every earlier message is fully handled)
is offered to it synchronously, inside the frame callback, and the reader never sees it when it
returns ``True``. That saves a future, a task step and a generator step per message, fifty times
a second per leg and direction. What the dispatcher raises is raised by the reader instead, as if
the reader had handled the message itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Protocol

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

#: How long our close waits for the peer's CLOSE frame before dropping the connection.
CLOSE_TIMEOUT_S = 2.0
#: The keepalive: a ping this often, and a peer that has not answered within as long is dropped.
KEEPALIVE_S = 20.0
NO_STATUS = 1005
"""The close code of a CLOSE frame that carried none (RFC 6455, 7.1.5)."""
ABNORMAL = 1006
"""The close code of a connection that ended without a CLOSE frame."""
MESSAGE_TOO_BIG = 1009
INVALID_TEXT = 1007


class SocketClosed(Exception):
    """The socket is closed (or closing): nothing more can be read from it or sent on it."""


class MessageSocket(Protocol):
    """What the relay needs of a WebSocket."""

    dispatch: Callable[[str | bytes], bool] | None
    """The reader's synchronous fast path: offered each message that arrives while the reader
    waits on an empty queue; ``True`` means handled (see :class:`PicowsSocket`)."""

    @property
    def close_code(self) -> int | None:
        """The peer's close code once the connection is closed; ``None`` before."""

    @property
    def close_reason(self) -> str:
        """The peer's close reason once the connection is closed; empty before."""

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        """The messages until the connection closes (then the iteration simply ends)."""

    async def recv(self) -> str | bytes:
        """The next message; :class:`SocketClosed` once the connection is closed."""

    async def send(self, message: str | bytes) -> None:
        """Send a whole message (text for ``str``); :class:`SocketClosed` if it cannot be."""

    def send_now(self, message: str | bytes) -> None:
        """:meth:`send` without the wait for :meth:`drained` (the caller waits later)."""

    def send_text_now(self, payload: bytes) -> None:
        """Send a text message given as its UTF-8 bytes (the caller vouches for the encoding),
        without the wait for :meth:`drained`."""

    @property
    def writable(self) -> bool:
        """The write buffer is under its high-water mark: a send would not wait."""

    async def drained(self) -> None:
        """Wait while the write buffer is over its high-water mark (backpressure)."""

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and ``reason`` and wait (bounded) until the connection is gone."""


class PhoneSocket(MessageSocket, Protocol):
    """The media stream's socket: also the upgrade request it came with."""

    @property
    def path(self) -> str:
        """The request target of the upgrade (path and query)."""

    @property
    def headers(self) -> Iterable[tuple[str, str]]:
        """The upgrade request's headers."""


class PicowsSocket(WSListener):
    """One WebSocket connection on ``picows``, as a :class:`MessageSocket`.

    ``max_size`` bounds a whole (reassembled) message, as ``websockets``' ``max_size`` did. On the
    server side ``path`` and ``headers`` are the upgrade request's, and ``on_open`` is called
    once the WebSocket is open (a request that never upgrades never calls it).
    """

    def __init__(
        self,
        max_size: int,
        path: str = "",
        headers: Iterable[tuple[str, str]] = (),
        on_open: Callable[[PicowsSocket], None] | None = None,
    ) -> None:
        super().__init__()
        self.max_size = max_size
        self.path = path
        self.headers = list(headers)
        self._on_open = on_open
        self.dispatch: Callable[[str | bytes], bool] | None = None
        """The reader's synchronous fast path (see the module's docstring)."""
        self._failure: Exception | None = None
        self.transport: WSTransport | None = None
        self._inbox: deque[str | bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._fragments: list[bytes] = []
        self._fragment_type = WSMsgType.CONTINUATION
        self._fragment_size = 0
        self._writable: asyncio.Future[None] | None = None
        self._disconnected = False
        self._close_code: int | None = None
        self._close_reason = ""

    # --- MessageSocket ----------------------------------------------------------------------

    @property
    def close_code(self) -> int | None:
        """See :class:`MessageSocket`."""
        return self._close_code

    @property
    def close_reason(self) -> str:
        """See :class:`MessageSocket`."""
        return self._close_reason

    async def __aiter__(self) -> AsyncIterator[str | bytes]:
        """See :class:`MessageSocket`."""
        inbox = self._inbox
        while True:
            self._raise_failure()
            if inbox:
                yield inbox.popleft()
                continue
            if self._disconnected:
                return
            await self._wait()

    async def recv(self) -> str | bytes:
        """See :class:`MessageSocket`."""
        while True:
            self._raise_failure()
            if self._inbox:
                return self._inbox.popleft()
            if self._disconnected:
                raise SocketClosed
            await self._wait()

    async def send(self, message: str | bytes) -> None:
        """See :class:`MessageSocket`."""
        self.send_now(message)
        await self._drained_open()

    async def send_text(self, payload: bytes) -> None:
        """See :class:`MessageSocket`."""
        self.send_text_now(payload)
        await self._drained_open()

    def send_now(self, message: str | bytes) -> None:
        """See :class:`MessageSocket`."""
        self._write(WSMsgType.TEXT if isinstance(message, str) else WSMsgType.BINARY, message)

    def send_text_now(self, payload: bytes) -> None:
        """See :class:`MessageSocket`."""
        self._write(WSMsgType.TEXT, payload)

    @property
    def writable(self) -> bool:
        """See :class:`MessageSocket`."""
        return self._writable is None

    async def drained(self) -> None:
        """See :class:`MessageSocket`."""
        writable = self._writable
        if writable is not None:
            await asyncio.shield(writable)

    def _write(self, kind: WSMsgType, message: str | bytes) -> None:
        transport = self.transport
        if transport is None or self._disconnected or transport.is_close_frame_sent:
            raise SocketClosed
        transport.send(kind, message)

    async def _drained_open(self) -> None:
        """:meth:`drained`, then :class:`SocketClosed` if the wait ended with the connection."""
        if self._writable is not None:
            await self.drained()
            if self._disconnected:
                raise SocketClosed

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """See :class:`MessageSocket`."""
        transport = self.transport
        if transport is None or self._disconnected:
            return
        if not transport.is_close_frame_sent:
            transport.send_close(_close_code(code), reason.encode()[:123])
        try:
            await asyncio.wait_for(transport.wait_disconnected(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            transport.disconnect(graceful=False)
            with contextlib.suppress(Exception):
                await transport.wait_disconnected()
        except Exception:  # noqa: S110 - a local failure that closed it: closed all the same
            pass

    # --- picows callbacks ---------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        """The WebSocket is open."""
        self.transport = transport
        if self._on_open is not None:
            self._on_open(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        """One frame: queue a whole message, or keep a fragment, or act on a CLOSE."""
        kind = frame.msg_type
        if kind is WSMsgType.BINARY or kind is WSMsgType.TEXT:
            if self._fragments:
                self._fail(transport, WSCloseCode.PROTOCOL_ERROR, "expected a continuation")
            elif kind is WSMsgType.BINARY and frame.fin:
                payload = frame.get_payload_as_bytes()
                if not self._offer(payload):
                    self._inbox.append(payload)
                    self._wake()
            elif frame.fin:
                self._deliver(transport, kind, frame.get_payload_as_bytes())
            else:
                self._fragment_type = kind
                self._add_fragment(transport, frame)
        elif kind is WSMsgType.CONTINUATION:
            if not self._fragments:
                self._fail(transport, WSCloseCode.PROTOCOL_ERROR, "unexpected continuation")
                return
            self._add_fragment(transport, frame)
            if frame.fin and not self._disconnected and not transport.is_close_frame_sent:
                payload = b"".join(self._fragments)
                self._fragments = []
                self._fragment_size = 0
                self._deliver(transport, self._fragment_type, payload)
        elif kind is WSMsgType.CLOSE:
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        # PING is answered by picows itself; PONG needs nothing.

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        """The connection is gone: record the peer's close and wake the reader and writers."""
        self._disconnected = True
        self._fragments = []
        handshake = transport.close_handshake
        received = handshake.recv if handshake is not None else None
        if received is None:
            self._close_code, self._close_reason = ABNORMAL, ""
        else:
            code = _code_value(received.code)
            self._close_code = code or NO_STATUS
            self._close_reason = received.reason
        self._wake()
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def pause_writing(self) -> None:
        """The transport's buffer is over its high-water mark: senders wait."""
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        """The buffer drained: senders go on."""
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    # --- internals ----------------------------------------------------------------------------

    def _deliver(self, transport: WSTransport, kind: WSMsgType, payload: bytes) -> None:
        if kind is WSMsgType.TEXT:
            try:
                message: str | bytes = payload.decode()
            except UnicodeDecodeError:
                self._fail(transport, INVALID_TEXT, "invalid UTF-8")
                return
        else:
            message = payload
        if not self._offer(message):
            self._inbox.append(message)
            self._wake()

    def _offer(self, message: str | bytes) -> bool:
        """Hand ``message`` to :attr:`dispatch` if the reader is parked on an empty queue."""
        dispatch = self.dispatch
        if dispatch is None or self._waiter is None or self._inbox or self._failure is not None:
            return False
        try:
            return dispatch(message)
        except Exception as error:  # the reader raises it, as if it had handled the message
            self._failure = error
            self._wake()
            return True

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def _add_fragment(self, transport: WSTransport, frame: WSFrame) -> None:
        self._fragment_size += frame.payload_size
        if self._fragment_size > self.max_size:
            self._fail(transport, MESSAGE_TOO_BIG, "message too big")
            return
        self._fragments.append(frame.get_payload_as_bytes())

    def _fail(self, transport: WSTransport, code: int | WSCloseCode, reason: str) -> None:
        """A protocol breach by the peer: CLOSE with the reason, then drop the connection."""
        self._fragments = []
        self._fragment_size = 0
        if not transport.is_close_frame_sent:
            transport.send_close(_close_code(code), reason.encode())
        transport.disconnect()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        waiter = self._waiter
        if waiter is None:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            # A reader cancelled here is no longer parked: nothing may be dispatched for it.
            if self._waiter is waiter:
                self._waiter = None


def _close_code(code: int | WSCloseCode) -> WSCloseCode:
    """``picows`` takes its enum; codes it does not list (3000-4999) go through as they are."""
    if isinstance(code, WSCloseCode):
        return code
    try:
        return WSCloseCode(code)
    except ValueError:
        return code  # type: ignore[return-value]  # the Cython enum accepts any int


def _code_value(code: int | WSCloseCode) -> int:
    return code.value if isinstance(code, WSCloseCode) else int(code)
