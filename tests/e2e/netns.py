"""Several machines on one: a network namespace per host, each with its own address on a bridge,
and TCP forwarders from the bridge to services that listen on 127.0.0.1 only (the shared
PostgreSQL and Redis), as a private network would carry them between machines."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import uuid
from contextlib import suppress
from pathlib import Path

from tests.conftest import need


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode:
        raise OSError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _free_subnet() -> str:
    """A 10.213.N.0/24 no interface of this machine has an address in (another run's bridge)."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, timeout=30).stdout
    free = [n for n in range(1, 255) if f" 10.213.{n}." not in used]
    return f"10.213.{random.choice(free)}"


class Network:
    """A bridge with address ``.1`` (the machine itself, as the hosts see it) and one namespace per
    host name at ``.10``, ``.11``, ...; ``wrap(name)`` is the command prefix that runs in it."""

    def __init__(self, hosts: list[str]):
        if os.geteuid() != 0:
            need("network namespaces", "creating them needs root")
        if shutil.which("ip") is None:
            need("network namespaces", "the ip command is not installed (package iproute2)")
        tag = uuid.uuid4().hex[:4]
        self.bridge = f"dbxbr{tag}"
        net = _free_subnet()
        self.gateway = f"{net}.1"
        self.address = {h: f"{net}.{10 + i}" for i, h in enumerate(hosts)}
        self.namespace = {h: f"donebox-{tag}-{h}" for h in hosts}
        self._veths: list[str] = []
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i, h in enumerate(hosts):
                ns, outside, inside = self.namespace[h], f"dbx{tag}{i}h", f"dbx{tag}{i}n"
                _ip("netns", "add", ns)
                _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
                self._veths.append(outside)
                _ip("link", "set", outside, "master", self.bridge)
                _ip("link", "set", outside, "up")
                _ip("link", "set", inside, "netns", ns)
                _ip("-n", ns, "addr", "add", f"{self.address[h]}/24", "dev", inside)
                _ip("-n", ns, "link", "set", inside, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
                _ip("-n", ns, "route", "add", "default", "via", self.gateway)
        except OSError as e:
            self.close()
            need("network namespaces", str(e))

    def wrap(self, host: str) -> list[str]:
        return ["ip", "netns", "exec", self.namespace[host]]

    def close(self) -> None:
        for ns in self.namespace.values():
            with suppress(OSError):
                _ip("netns", "delete", ns)  # takes its end of the veth pair, and so the pair, along
        for veth in self._veths:
            with suppress(OSError):
                _ip("link", "delete", veth)  # gone already unless its namespace was never made
        with suppress(OSError):
            _ip("link", "delete", self.bridge)


class Forwarder:
    """TCP forwarders in a process of their own (the traffic of six hosts would otherwise compete
    with the test for one interpreter): ``ports[target]`` on ``host`` joins every connection to
    127.0.0.1:``target``."""

    def __init__(self, host: str, *targets: int):
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.netns", host, *map(str, targets)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(Path(__file__).resolve().parents[2]),
        )
        line = self._proc.stdout.readline().split()
        if len(line) != len(targets):
            self.close()
            raise OSError(f"the forwarder did not start on {host}")
        self.ports = dict(zip(targets, map(int, line), strict=True))

    def close(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()


async def _join(reader, writer, target: int) -> None:
    try:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        writer.close()
        return

    async def pipe(src, dst):
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except OSError:
            pass
        finally:
            with suppress(OSError):
                dst.close()

    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def _forward(host: str, targets: list[int]) -> None:
    servers = [
        await asyncio.start_server(lambda r, w, t=t: _join(r, w, t), host, 0, reuse_address=True)
        for t in targets
    ]
    print(" ".join(str(s.sockets[0].getsockname()[1]) for s in servers), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


if __name__ == "__main__":  # python -m tests.e2e.netns HOST TARGET_PORT...: prints the ports it listens on
    asyncio.run(_forward(sys.argv[1], [int(p) for p in sys.argv[2:]]))
