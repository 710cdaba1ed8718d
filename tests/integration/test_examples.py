"""Every script in examples/ runs as written: real processes talking over TCP on 127.0.0.1.

The examples run on the same anyio backend as the test (``--backend``); the test drives them
through their standard streams and waits for the lines they print, each wait bounded.
"""

from __future__ import annotations

import dataclasses
import enum
import filecmp
import importlib
import os
import re
import signal
import subprocess
import sys
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import Process

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DOCS = ROOT / "docs"
SCRIPTS = ("chat.py", "file_transfer.py", "kv_service.py")
TIMEOUT = 30.0  # seconds for any one expected line or exit
ADDRESS = r"(tcp://127\.0\.0\.1:\d+)"
SHORT_ID = r"[0-9a-f]{16}"


class Example:
    """A running example: its output read line by line, its input written line by line."""

    def __init__(self, process: Process, name: str) -> None:
        self.process = process
        self.name = name
        assert process.stdout is not None
        self._stdout = BufferedByteReceiveStream(process.stdout)
        self.output: list[str] = []

    async def expect(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """Read lines until one matches ``pattern`` (a regular expression, searched)."""
        compiled = re.compile(pattern)
        try:
            with anyio.fail_after(timeout):
                while True:
                    raw = await self._stdout.receive_until(b"\n", 1 << 20)
                    line = raw.decode(errors="replace")
                    self.output.append(line)
                    match = compiled.search(line)
                    if match:
                        return match
        except (anyio.EndOfStream, anyio.IncompleteRead, TimeoutError) as exc:
            raise AssertionError(
                f"{self.name}: no line matching {pattern!r} ({exc!r}); output so far:\n"
                + "\n".join(self.output)
            ) from exc

    async def expect_all(self, *patterns: str, timeout: float = TIMEOUT) -> None:
        """Read lines until each of ``patterns`` has matched one, in any order."""
        waiting = [re.compile(pattern) for pattern in patterns]
        with anyio.fail_after(timeout):
            while waiting:
                line = (await self.expect(".", timeout=timeout)).string
                for compiled in waiting:
                    if compiled.search(line):
                        waiting.remove(compiled)
                        break

    async def send_line(self, text: str) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(text.encode() + b"\n")

    async def close_input(self) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.aclose()

    async def exit_code(self, timeout: float = TIMEOUT) -> int:
        """Read the rest of the output and wait for the process to end."""
        with anyio.fail_after(timeout):
            while True:
                try:
                    raw = await self._stdout.receive_until(b"\n", 1 << 20)
                except (anyio.EndOfStream, anyio.IncompleteRead):
                    break
                self.output.append(raw.decode(errors="replace"))
            return await self.process.wait()


@asynccontextmanager
async def run_example(script: str, *args: str, backend: str) -> AsyncIterator[Example]:
    process = await anyio.open_process(
        [sys.executable, str(EXAMPLES / script), "--backend", backend, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield Example(process, script)
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.terminate()
                with anyio.move_on_after(5):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
            await process.aclose()


# --------------------------------------------------------------------------- every script


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_runs_as_written(script: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--help"],
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:")
    assert "--backend" in result.stdout


def test_generated_protobuf_code_of_the_kv_example_is_current() -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (the dev extra) generates it")
    from grpc_tools import protoc  # type: ignore[import-untyped]

    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{EXAMPLES}",
            f"--plugin=protoc-gen-mypy={Path(sys.executable).parent / 'protoc-gen-mypy'}",
            f"--python_out={tmp}",
            f"--mypy_out={tmp}",
            str(EXAMPLES / "kvstore.proto"),
        ]
        assert protoc.main(args) == 0
        for name in ("kvstore_pb2.py", "kvstore_pb2.pyi"):
            assert filecmp.cmp(Path(tmp) / name, EXAMPLES / name, shallow=False), (
                f"examples/{name} is stale: regenerate it (examples/README.md)"
            )


# --------------------------------------------------------------------------- chat


@pytest.mark.anyio
async def test_chat_between_three_nodes(anyio_backend: str) -> None:
    listen = "tcp://127.0.0.1:0"
    async with run_example("chat.py", "--name", "alice", "--listen", listen,
                           backend=anyio_backend) as alice:
        alice_address = (await alice.expect(rf"^\* listening on {ADDRESS} as [0-9a-f]{{64}}$"))[1]
        async with run_example("chat.py", "--name", "bob", "--listen", listen,
                               "--peer", alice_address, backend=anyio_backend) as bob:
            bob_address = (await bob.expect(rf"^\* listening on {ADDRESS}"))[1]
            await bob.expect(rf"^\* connected {SHORT_ID}$")
            await alice.expect(rf"^\* connected {SHORT_ID}$")
            async with run_example("chat.py", "--name", "carol", "--peer", alice_address,
                                   "--peer", bob_address, backend=anyio_backend) as carol:
                await carol.expect(rf"^\* connected {SHORT_ID}$")
                await carol.expect(rf"^\* connected {SHORT_ID}$")
                await alice.expect(rf"^\* connected {SHORT_ID}$")
                await bob.expect(rf"^\* connected {SHORT_ID}$")

                await carol.send_line("hello from carol")
                await alice.expect(rf"^<carol {SHORT_ID}> hello from carol$")
                await bob.expect(rf"^<carol {SHORT_ID}> hello from carol$")

                await alice.send_line("hi both")
                await bob.expect(rf"^<alice {SHORT_ID}> hi both$")
                await carol.expect(rf"^<alice {SHORT_ID}> hi both$")

                await carol.send_line("bye now")  # sent, then end of input: carol leaves
                await carol.close_input()
                await carol.expect(r"^\* bye$")
                assert await carol.exit_code() == 0
                # the last message may be read after the disconnection is noticed
                await bob.expect_all(rf"^<carol {SHORT_ID}> bye now$",
                                     rf"^\* disconnected {SHORT_ID}$")
                await alice.expect_all(rf"^<carol {SHORT_ID}> bye now$",
                                       rf"^\* disconnected {SHORT_ID}$")

            await bob.close_input()
            assert await bob.exit_code() == 0
        await alice.close_input()
        assert await alice.exit_code() == 0
        # nobody printed a message twice
        assert sum("hello from carol" in line for line in alice.output) == 1


# --------------------------------------------------------------------------- file transfer


@pytest.mark.anyio
async def test_file_transfer_with_progress(anyio_backend: str, tmp_path: Path) -> None:
    source = tmp_path / "payload.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 123))
    output = tmp_path / "received"
    async with run_example("file_transfer.py", "receive", "--listen", "tcp://127.0.0.1:0",
                           "--output-dir", str(output), "--count", "1",
                           backend=anyio_backend) as receiver:
        address = (await receiver.expect(rf"^receiving files on {ADDRESS} as"))[1]
        async with run_example("file_transfer.py", "send", "--peer", address, str(source),
                               backend=anyio_backend) as sender:
            await sender.expect(r"^sending payload\.bin: 100% of 3145851 bytes")
            await sender.expect(r"^sent payload\.bin: 3145851 bytes in .* sha256 ok$")
            assert await sender.exit_code() == 0
        await receiver.expect(rf"^receiving payload\.bin \(3145851 bytes\) from {SHORT_ID}$")
        await receiver.expect(r"^receiving payload\.bin: 100% of 3145851 bytes")
        saved = await receiver.expect(r"^saved (.*payload\.bin) \(3145851 bytes, sha256 ")
        assert await receiver.exit_code() == 0  # --count 1
    assert Path(saved[1]) == output / "payload.bin"
    assert (output / "payload.bin").read_bytes() == source.read_bytes()
    assert not (output / "payload.bin.part").exists()


# --------------------------------------------------------------------------- RPC service


@pytest.mark.anyio
async def test_kv_service_from_its_own_proto(anyio_backend: str) -> None:
    async with run_example("kv_service.py", "serve", "--listen", "tcp://127.0.0.1:0",
                           backend=anyio_backend) as server:
        address = (await server.expect(rf"^kvstore serving /plait-example/kvstore/1 on {ADDRESS}$"))[1]
        peer_id = (await server.expect(r"^peer id: ([0-9a-f]{64})$"))[1]

        async def client(*args: str) -> tuple[int, list[str]]:
            async with run_example("kv_service.py", *args, "--peer", address, "--peer-id",
                                   peer_id, backend=anyio_backend) as process:
                code = await process.exit_code()
                return code, process.output

        code, lines = await client("fill", "--count", "200", "--sessions", "3")
        assert code == 0, lines
        assert re.match(r"^stored 200 key\(s\) over 3 session\(s\) in ", lines[-1]), lines

        code, lines = await client("get", "key-000007")
        assert (code, lines) == (0, ["key-000007 = 7 (version 1)"])

        code, lines = await client("get", "missing")
        assert (code, lines) == (1, ["error: NOT_FOUND: no key 'missing'"])

        code, lines = await client("scan", "key-00019")  # a server stream
        assert code == 0, lines
        assert lines == [f"key-00019{i} = 19{i}" for i in range(10)] + ["10 key(s)"]

        server.process.send_signal(signal.SIGINT)  # as Ctrl-C
        await server.expect(r"^stopped with 200 key\(s\)$")
        assert await server.exit_code() == 0


# --------------------------------------------------------------------------- the user guide


def runnable_snippets() -> list[tuple[str, int, str]]:
    """The complete programs in README.md and docs/*.md: python blocks that end by running
    ``main``."""
    found = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
        found.extend((page.name, i, code) for i, code in enumerate(blocks)
                     if "anyio.run(main" in code)
    return found


@pytest.mark.parametrize(("page", "index", "code"), runnable_snippets(),
                         ids=lambda value: value if isinstance(value, str | int) else "")
def test_programs_in_the_guide_run(page: str, index: int, code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"{page} block {index}:\n{result.stderr}"
    assert result.stdout.strip()  # each one prints what it did


def test_the_guide_has_runnable_programs() -> None:
    assert {page for page, _, _ in runnable_snippets()} >= {
        "README.md", "index.md", "embedding.md", "services.md", "messaging.md",
    }


CONFIG_CLASSES = {
    "NodeConfig": "plait.node",
    "UpgradeConfig": "plait.transport.upgrade",
    "IdentityConfig": "plait.transport",
    "TcpConfig": "plait.transport",
    "MemoryTransportConfig": "plait.transport.memory",
    "NoiseConfig": "plait.noise",
    "YamuxConfig": "plait.muxer",
    "NegotiationConfig": "plait.negotiation",
    "RpcServerConfig": "plait.rpc",
    "RpcClientConfig": "plait.rpc",
    "PoolConfig": "plait.rpc",
    "MessagingConfig": "plait.messaging",
}


def documented_defaults() -> dict[str, dict[str, str]]:
    """``{class: {field: default}}`` from the tables of docs/limits.md."""
    tables: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in (DOCS / "limits.md").read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^### `(\w+)`", line)
        if heading:
            current = tables.setdefault(heading[1], {})
            continue
        row = re.match(r"^\| `(\w+)` \| `([^`]*)` \|", line)
        if row and current is not None:
            current[row[1]] = row[2]
    return tables


def actual_default(field: dataclasses.Field[object]) -> str:
    if field.default_factory is not dataclasses.MISSING:
        return f"{field.default_factory.__qualname__}()"
    value = field.default
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    return repr(value)


def test_limits_page_quotes_every_config_field_and_its_actual_default() -> None:
    tables = documented_defaults()
    assert set(tables) == set(CONFIG_CLASSES)
    for name, module in CONFIG_CLASSES.items():
        cls = getattr(importlib.import_module(module), name)
        actual = {field.name: actual_default(field) for field in dataclasses.fields(cls)}
        assert tables[name] == actual, f"docs/limits.md is out of date for {name}"


def test_links_in_the_guide_point_at_files_that_exist() -> None:
    for page in sorted(DOCS.glob("*.md")):
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if target == "../SECURITY.md" and not (ROOT / "SECURITY.md").exists():
                continue  # written separately; the link is checked once it exists
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
