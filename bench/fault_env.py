"""Helpers of bench/faults.py: ports of one range, a private Redis and PostgreSQL that may be killed
and restarted, a tmpfs that can be filled, and an SMTP front whose behaviour the bench switches."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from common import wait_port  # noqa: F401 - bench/ is on sys.path; faults.py takes it from here

BIN = Path(sys.executable).parent


class Unavailable(RuntimeError):
    """Raised when a component a fault needs is missing (no redis-server, initdb, or mount permission)."""


class Ports:
    """Free TCP ports taken in order from one range (BENCH_PORTS, "low-high")."""

    def __init__(self, spec: str):
        low, high = (int(x) for x in spec.split("-"))
        self.next, self.high = low, high

    def take(self) -> int:
        while self.next <= self.high:
            port, self.next = self.next, self.next + 1
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
        raise RuntimeError(f"no free port left up to {self.high}")


def donebox(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    """``donebox ARGS`` in a process group of its own (so kill -9 takes its children too)."""
    with log.open("ab") as out:  # the child keeps its own copy
        return subprocess.Popen(
            [str(BIN / "donebox"), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill9(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait(10)


def stop(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        kill9(p)


class PrivateRedis:
    """``redis-server`` on ``port`` without persistence: a restart loses every broker message."""

    def __init__(self, port: int, log: Path):
        if not shutil.which("redis-server"):
            raise Unavailable("redis-server is not installed")
        self.port, self.log, self.proc = port, log, None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
                + ["--appendonly", "no"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_port(self.port, 30)

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb refuses to run as root: run PostgreSQL's tools as the postgres user then."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


class PrivatePostgres:
    """A PostgreSQL cluster of our own in ``root`` on ``port`` (trust auth), to restart at will."""

    def __init__(self, root: Path, port: int):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        tool = shutil.which("initdb") or (found[-1] if found else None)
        if tool is None:
            raise Unavailable("PostgreSQL's initdb is not installed")
        self.bin = Path(tool).parent
        self.data, self.port = root / "pgdata", port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        root.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
            shutil.chown(self.data, "postgres")
        subprocess.run(
            _as_postgres([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres"])
            + ["--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def _ctl(self, *args: str) -> None:
        opts = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c max_connections=200"
        subprocess.run(
            _as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l"])
            + [str(self.data / "log"), "-o", opts, *args],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        """A fast restart, as an upgrade or a reconfiguration makes: every connection is cut."""
        self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        try:
            self._ctl("stop", "-m", "fast")
        except subprocess.CalledProcessError:
            pass


class Tmpfs:
    """A small tmpfs mounted at ``path`` (root only), with a file that fills it."""

    def __init__(self, path: Path, size_mb: int):
        path.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        if r.returncode:
            raise Unavailable(f"cannot mount a tmpfs: {r.stderr.strip() or r.returncode}")
        self.path, self.filler = path, path / "filler"

    def fill(self) -> None:
        """Write the filler until the file system is full. Unbuffered: a buffered file keeps the
        part of a chunk the full file system refused, and its close raised ENOSPC writing it again."""
        chunk = b"\0" * 65536
        with self.filler.open("ab", buffering=0) as f:
            try:
                while True:
                    f.write(chunk)
            except OSError:
                pass

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


class SMTPFront:
    """A TCP front to the counting sink whose behaviour the bench switches: ``accept`` (pass the
    session through), ``hang`` (take the connection, never answer) or ``refuse`` (greet with 421 and
    hang up). Runs an event loop in a thread of the bench."""

    def __init__(self, port: int, sink_port: int):
        self.port, self.sink_port, self.mode = port, sink_port, "accept"
        self.loop = asyncio.new_event_loop()
        self._open: set[asyncio.StreamWriter] = set()  # sessions passed through to the sink
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", self.port))
        ready.set()
        self.loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "hang":
            await self._swallow(reader, writer)
            return
        if self.mode == "refuse":
            writer.write(b"421 4.3.2 Service not available, try again later\r\n")
            await writer.drain()
            writer.close()
            return
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.sink_port)
        except OSError:
            writer.close()
            return
        self._open.add(writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    if self.mode == "hang":  # a server that stops answering mid-session
                        await self._swallow(src, dst)
                        return
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        self._open.discard(writer)

    async def _swallow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read whatever comes and answer nothing, until the client gives up."""
        try:
            while await reader.read(65536):
                pass
        except OSError:
            pass
        writer.close()

    def set(self, mode: str) -> None:
        """Switch to ``mode``; open sessions hang with it (``hang``) or are cut (``refuse``)."""
        self.mode = mode
        if mode == "refuse":
            for w in list(self._open):
                self.loop.call_soon_threadsafe(w.close)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
