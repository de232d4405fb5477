"""The proxy's own stdio transport (mcp_pipes) on real OS pipes: lines in, messages out, fds put back."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

import anyio
import pytest

from interlock.integrations.mcp_pipes import PipeLines, PipeWriter, agent_pipes


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    yield read, write
    for fd in (read, write):
        with contextlib.suppress(OSError):  # a test may have closed it already
            os.close(fd)


def read_lines(read: int) -> list[str]:
    async def main() -> list[str]:
        return [line async for line in PipeLines(read)]

    return anyio.run(main)


LINES = [
    # (bytes the agent writes, then closes, → lines the proxy reads)
    (b'{"a":1}\n{"b":2}\n', ['{"a":1}\n', '{"b":2}\n']),
    (b'{"a":1}\n{"tail":true}', ['{"a":1}\n', '{"tail":true}']),  # closed mid-line: the rest is a line
    (b"", []),
    (b"\n\n", ["\n", "\n"]),
    ("h\u00e9llo\n".encode(), ["h\u00e9llo\n"]),
    (b"bad \xff byte\n", ["bad \ufffd byte\n"]),  # replaced, as the SDK's transport does
]


@pytest.mark.parametrize(("written", "expected"), LINES)
def test_lines_as_the_agent_wrote_them(pipe: tuple[int, int], written: bytes, expected: list[str]) -> None:
    read, write = pipe
    os.write(write, written)
    os.close(write)
    assert read_lines(read) == expected


def test_a_line_longer_than_one_read_arrives_whole(pipe: tuple[int, int]) -> None:
    read, write = pipe
    os.set_blocking(read, False)
    long = "x" * 300_000 + "\n"
    got: list[str] = []

    async def main() -> None:
        async def agent() -> None:
            await PipeWriter(write).write(long + "second\n")
            os.close(write)

        async with anyio.create_task_group() as tg:
            tg.start_soon(agent)
            got.extend([line async for line in PipeLines(read)])

    os.set_blocking(write, False)
    anyio.run(main)
    assert got == [long, "second\n"]


def test_a_full_pipe_parks_the_writer_not_the_loop(pipe: tuple[int, int]) -> None:
    """300 KB into a 64 KiB pipe: the write waits for the reader, and other tasks run meanwhile."""
    read, write = pipe
    os.set_blocking(write, False)
    message = "y" * 300_000
    ticks: list[int] = []

    async def main() -> bytes:
        received = bytearray()

        async def ticker() -> None:
            for i in range(5):
                ticks.append(i)
                await anyio.sleep(0)

        async def reader() -> None:
            while len(received) < len(message):
                await anyio.wait_readable(read)
                received.extend(os.read(read, 1 << 16))

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            tg.start_soon(reader)
            await PipeWriter(write).write(message)
        return bytes(received)

    assert anyio.run(main) == message.encode()
    assert ticks == [0, 1, 2, 3, 4]


def test_agent_pipes_take_the_wire_and_give_it_back(pipe: tuple[int, int]) -> None:
    """While held, a stray write to the "stdout" fd misses the wire (it goes to stderr); afterwards the
    fds are the pipe again, blocking as before."""
    agent_in_read, agent_in_write = pipe
    out_read, out_write = os.pipe()
    try:
        with agent_pipes(agent_in_read, out_write) as pipes:
            assert pipes is not None
            lines, writer = pipes
            os.write(agent_in_write, b'{"jsonrpc":"2.0"}\n')
            os.close(agent_in_write)

            async def main() -> list[str]:
                await writer.write('{"answer":1}\n')
                return [line async for line in lines]

            assert anyio.run(main) == ['{"jsonrpc":"2.0"}\n']
            assert os.read(agent_in_read, 10) == b""  # the "stdin" fd now reads /dev/null
        assert os.read(out_read, 100) == b'{"answer":1}\n'
        assert os.get_blocking(out_write) and os.get_blocking(agent_in_read)
        os.write(out_write, b"after\n")  # the "stdout" fd is the pipe again
        assert os.read(out_read, 100) == b"after\n"
    finally:
        for fd in (out_read, out_write):
            os.close(fd)


def test_a_file_keeps_the_sdk_transport(pipe: tuple[int, int]) -> None:
    """stdin redirected from a file cannot be waited on: None, and nothing is touched."""
    _, write = pipe
    with tempfile.TemporaryFile() as file:
        with agent_pipes(file.fileno(), write) as pipes:
            assert pipes is None
        os.write(write, b"still the pipe")
