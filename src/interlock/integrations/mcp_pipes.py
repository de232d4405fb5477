"""The agent's stdio pipes, read and written by the proxy's event loop itself.

The MCP SDK's `stdio_server` reads each line of stdin in a worker thread and writes, then flushes,
each answer in two more: three thread hand-offs per tool call, each a wake-up and a fight for the
GIL with whatever else runs (the audit writer, an outcome report). Here the event loop waits on the
pipes (epoll) and reads and writes them without blocking, so a message costs no thread at all. The
SDK's framing and parsing stay as they are: these objects are what `stdio_server(stdin, stdout)`
reads lines from and writes messages to.

Only pipes and sockets are taken over: a file cannot be waited on, and a terminal's non-blocking
flag is shared with the shell that owns it. Anything else keeps the SDK's threaded transport
(`agent_pipes` yields None).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections import deque
from collections.abc import Iterator

import anyio

#: Read at most this much per wake-up; a longer message simply takes several.
CHUNK = 1 << 16
#: Unread bytes at which a PipeLines stops reading until its reader asks for more.
PAUSE_BYTES = 1 << 20


class PipeLines:
    """The lines an agent writes to the proxy's stdin, as text (undecodable bytes replaced, as the SDK
    does), each with its newline; the last one without if the pipe closes mid-line. `next_line` gives
    them as bytes (the proxy's own relay parses bytes; the upstream's stdout is read the same way).

    The event loop watches the pipe from the first wait until its end (or `close`), reading whatever
    arrives into the buffer: not registered and unregistered with epoll around every read (two system
    calls and the selector's bookkeeping each, twice per relayed tool call). Reading pauses while
    PAUSE_BYTES wait unread, so an agent cannot make the proxy buffer without bound."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = bytearray()
        self._searched = 0  # the buffer holds no newline before this offset
        self._ended = False  # the pipe's end was read (or reading it failed: `_error`)
        self._error: OSError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._watching: asyncio.AbstractEventLoop | None = None  # the loop watching `fd`, while it does

    def __aiter__(self) -> PipeLines:
        return self

    async def __anext__(self) -> str:
        line = await self.next_line()
        if line is None:
            raise StopAsyncIteration
        return line.decode("utf-8", errors="replace")

    async def next_line(self) -> bytes | None:
        """The next line as bytes, or None once the pipe is closed and every line was read."""
        while True:
            end = self._buffer.find(b"\n", self._searched)
            if end >= 0:
                line = bytes(self._buffer[:end + 1])
                del self._buffer[:end + 1]
                self._searched = 0
                return line
            self._searched = len(self._buffer)
            if self._ended:
                if self._error is not None:
                    raise self._error
                if not self._buffer:
                    return None
                rest = bytes(self._buffer)
                self._buffer.clear()
                self._searched = 0
                return rest
            await self._more()

    async def _more(self) -> None:
        """Until more bytes (or the end) arrived. A cancellation arrives as at any await."""
        loop = asyncio.get_running_loop()
        if self._watching is None:
            loop.add_reader(self.fd, self._on_readable)
            self._watching = loop
        waiter = self._waiter = loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self.fd, CHUNK)
        except BlockingIOError:
            return  # woken without data after all
        except OSError as exc:
            self._error, chunk = exc, b""
        if chunk:
            self._buffer += chunk
            if self._waiter is None and len(self._buffer) >= PAUSE_BYTES:
                self.close()  # nobody reads for now: the next wait watches the pipe again
        else:
            self._ended = True
            self.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def close(self) -> None:
        """Stop watching the pipe (before its descriptor is closed: a number reused must not be watched)."""
        if self._watching is not None:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nothing watches any more
                self._watching.remove_reader(self.fd)
            self._watching = None


class PipeWriter:
    """Messages to the agent on the proxy's stdout, written without blocking the event loop: a full pipe
    (an agent that does not read) parks only the writing task, never the proxy. Whole messages, in the
    order sent: while one waits for room in the pipe, later ones queue behind it (concurrent tool calls
    answer concurrently), so no message is ever cut into by another."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._queue: deque[memoryview] = deque()
        self._drained: anyio.Event | None = None  # set when the queue is written; None when empty

    async def write(self, text: str) -> None:
        await self.send(text.encode("utf-8"))

    async def send(self, data: bytes) -> None:
        """Write `data` whole. Usually one os.write and no wait at all."""
        if self._drained is not None:  # another message waits for room: go after it
            self._queue.append(memoryview(data))
            await self._drained.wait()
            return
        rest = self._write_now(memoryview(data))
        if not rest:
            return
        drained = self._drained = anyio.Event()
        self._queue.append(rest)
        try:
            while self._queue:
                await anyio.wait_writable(self.fd)
                head = self._write_now(self._queue[0])
                if head:
                    self._queue[0] = head
                else:
                    self._queue.popleft()
        finally:
            self._queue.clear()  # cancelled or broken: the wire is unusable anyway; nobody waits forever
            self._drained = None
            drained.set()

    def _write_now(self, data: memoryview) -> memoryview:
        """Write what the pipe takes now; the part it did not take."""
        while data:
            try:
                written = os.write(self.fd, data)
            except BlockingIOError:
                return data
            data = data[written:]
        return data

    async def flush(self) -> None:
        """Nothing is buffered: every write went to the pipe."""


def _waitable(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


@contextlib.contextmanager
def agent_pipes(stdin: int = 0, stdout: int = 1) -> Iterator[tuple[PipeLines, PipeWriter] | None]:
    """Take the agent's stdin and stdout for the wire, as the SDK's own transport does: private
    duplicates carry the messages, while fd 0 reads /dev/null and fd 1 writes to stderr, so a stray
    print (ours, a library's) cannot corrupt the wire. Both are put back on exit. None when either is
    something the event loop cannot wait on (then use the SDK's transport)."""
    if not (_waitable(stdin) and _waitable(stdout)):
        yield None
        return
    wire_in, wire_out = os.dup(stdin), os.dup(stdout)
    saved_in, saved_out = os.dup(stdin), os.dup(stdout)
    null = os.open(os.devnull, os.O_RDONLY)
    # The flag belongs to the pipe's end, shared by every descriptor of it: put back what it was.
    blocking = {fd: os.get_blocking(fd) for fd in (wire_in, wire_out)}
    lines = PipeLines(wire_in)
    try:
        os.dup2(null, stdin)
        os.dup2(2, stdout)
        for fd in blocking:
            os.set_blocking(fd, False)
        yield lines, PipeWriter(wire_out)
    finally:
        lines.close()
        for fd, was in blocking.items():
            with contextlib.suppress(OSError):
                os.set_blocking(fd, was)
        for saved, fd in ((saved_in, stdin), (saved_out, stdout)):
            with contextlib.suppress(OSError):
                os.dup2(saved, fd)
        for fd in (wire_in, wire_out, saved_in, saved_out, null):
            with contextlib.suppress(OSError):
                os.close(fd)
