"""The reference MTA of bench/outbound.py: a private Postfix instance, with and without OpenDKIM.

Debian's ``postfix`` and ``opendkim`` packages (installed with apt-get when missing). The instance
has its own config and queue directories under the bench's temporary folder, listens on loopback
on a bench port, relays everything to the bench's sink (``relayhost``), and, with DKIM, hands each
message to OpenDKIM as a milter signing with the same RSA-2048 key donebox signs with
(relaxed/simple, as donebox). Nothing of the machine's own Postfix is used or touched.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import smtplib
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from outbound_env import children, ensure_debian, free_port, process_cpu_s, tree_cpu_s, wait_port

QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
# concurrent SMTP clients handing the messages to Postfix (as smtp-source -s 20), each reusing its connection
INJECTORS = 20


def ensure_packages() -> None:
    ensure_debian({"smtp-sink": "postfix", "opendkim": "opendkim"})


def _master_cf(port: int) -> str:
    """Debian's services with no chroot (the queue is not under /var/spool) and smtpd on ``port``."""
    lines = []
    for line in Path("/etc/postfix/master.cf").read_text().splitlines():
        f = line.split()
        if line.startswith(("#", " ", "\t")) or len(f) < 8:
            lines.append(line)
            continue
        if f[0] == "smtp" and f[1] == "inet":
            f[0] = f"127.0.0.1:{port}"
        f[4] = "n"  # chroot
        lines.append(" ".join(f))
    return "\n".join(lines) + "\n"


class Postfix:
    """A private Postfix (and its OpenDKIM milter, when ``dkim_key`` is given) relaying to ``sink_port``."""

    def __init__(self, var: Path, sink_port: int, dkim_key: Path | None, domain: str, selector: str):
        self.dir = var / ("postfix-dkim" if dkim_key else "postfix-plain")
        self._log_at = self._sent = self._failed = 0  # how far relayed() has read the log, what it found
        self.port = free_port()
        self.milter = self.dir / "opendkim.sock" if dkim_key else None
        self.opendkim: subprocess.Popen | None = None
        conf, queue, data = self.dir / "conf", self.dir / "queue", self.dir / "data"
        for d in (conf, queue, data):
            d.mkdir(parents=True, exist_ok=True)
        shutil.chown(data, "postfix")
        main = {
            "compatibility_level": "3.6",
            "queue_directory": str(queue),
            "data_directory": str(data),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "myhostname": "postfix.bench.example",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "relayhost": f"[127.0.0.1]:{sink_port}",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            "maillog_file": str(self.dir / "maillog"),
            "maillog_file_prefixes": str(self.dir),
            "biff": "no",
            "smtp_connection_cache_on_demand": "yes",
            "default_destination_concurrency_limit": "20",
            "message_size_limit": "20480000",
            "max_use": "100000",  # daemons are not recycled every 100 messages in a bench run
        }
        if dkim_key:
            main |= {
                "smtpd_milters": f"unix:{self.milter}",
                "non_smtpd_milters": "$smtpd_milters",
                "milter_default_action": "tempfail",
            }
            (self.dir / "opendkim.conf").write_text(
                "\n".join(
                    [
                        "Syslog no",
                        "Background no",
                        f"Socket local:{self.milter}",  # a TCP milter waits on delayed ACKs
                        "UMask 000",
                        f"Domain {domain}",
                        f"Selector {selector}",
                        f"KeyFile {dkim_key}",
                        "Canonicalization relaxed/simple",
                        "SignatureAlgorithm rsa-sha256",
                        "Mode s",
                        "RequireSafeKeys false",
                        f"PidFile {self.dir / 'opendkim.pid'}",
                        "",
                    ]
                )
            )
        (conf / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main.items()))
        (conf / "master.cf").write_text(_master_cf(self.port))
        self.conf = conf
        self.queue = queue

    def __enter__(self) -> Postfix:
        if self.milter:
            self.opendkim = subprocess.Popen(
                ["opendkim", "-f", "-x", str(self.dir / "opendkim.conf")],
                stdout=subprocess.DEVNULL,
                stderr=open(self.dir / "opendkim.log", "ab"),  # noqa: SIM115 - the process's lifetime
            )
            end = time.monotonic() + 15
            while not self.milter.exists() and time.monotonic() < end:
                time.sleep(0.05)
        subprocess.run(["postfix", "-c", str(self.conf), "start"], check=True, capture_output=True)
        wait_port(self.port, 15)
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run(["postfix", "-c", str(self.conf), "stop"], capture_output=True)
        if self.opendkim is not None:
            self.opendkim.send_signal(signal.SIGTERM)
            try:
                self.opendkim.wait(10)
            except subprocess.TimeoutExpired:
                self.opendkim.kill()

    def master_pid(self) -> int:
        return int((self.queue / "pid" / "master.pid").read_text().split()[0])

    def pids(self) -> dict[str, list[int]]:
        """{"postfix": the master and its children, "opendkim": the milter's process}."""
        master = self.master_pid()
        out: dict[str, list[int]] = {"postfix": [master, *children(master)], "opendkim": []}
        if self.opendkim is not None:
            out["opendkim"].append(self.opendkim.pid)
        return out

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds so far of Postfix (the master, its children alive now and those that exited)
        and of OpenDKIM (its threads)."""
        return {
            "postfix": tree_cpu_s(self.master_pid()),
            "opendkim": sum(process_cpu_s(p) for p in self.pids()["opendkim"]),
        }

    def queued(self) -> int:
        return sum(sum(len(f) for _, _, f in os.walk(self.queue / q)) for q in QUEUES)

    def relayed(self) -> tuple[int, int]:
        """(messages relayed to the sink, messages deferred or bounced) by the instance's log so far.
        Each call reads only the lines written since the last (the polls of ``relay`` share the
        cores with the Postfix they wait for: reading the whole log every time cost them more as it
        grew)."""
        path = self.dir / "maillog"
        if path.exists():
            with path.open("rb") as f:
                f.seek(self._log_at)
                chunk = f.read()
            whole = chunk[: chunk.rfind(b"\n") + 1]  # a line being written is read next time
            self._log_at += len(whole)
            self._sent += whole.count(b" status=sent ")
            self._failed += len(re.findall(rb" status=(?:deferred|bounced) ", whole))
        return self._sent, self._failed

    def relay(self, messages: list[tuple[str, str, bytes]], timeout_s: float = 600) -> tuple[float, dict]:
        """Hand ``messages`` (envelope sender, recipient, bytes) to the instance over INJECTORS
        reused connections and wait until it relayed every one to the sink; (seconds, CPU seconds
        by process kind: postfix (processes that exited early are missed: Postfix's daemons are
        long-lived while busy), opendkim, injector)."""
        sent0, _ = self.relayed()
        cpu0 = self.cpu_s()
        self_cpu0 = time.process_time()
        t0 = time.monotonic()

        def inject(chunk: list[tuple[str, str, bytes]]) -> None:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=60) as smtp:
                for sender, rcpt, raw in chunk:
                    smtp.sendmail(sender, [rcpt], raw)

        with ThreadPoolExecutor(INJECTORS) as pool:
            list(pool.map(inject, [messages[i::INJECTORS] for i in range(INJECTORS)]))
        while True:
            sent, failed = self.relayed()
            if sent - sent0 >= len(messages) and self.queued() == 0:
                break
            if failed or time.monotonic() - t0 > timeout_s:
                raise RuntimeError(f"postfix relayed {sent - sent0} of {len(messages)}, {failed} deferred")
            time.sleep(0.05)
        seconds = time.monotonic() - t0
        cpu1 = self.cpu_s()
        cpu = {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1}
        cpu["injector"] = time.process_time() - self_cpu0
        return seconds, cpu


def unsigned(raw: bytes) -> bytes:
    """``raw`` without the DKIM-Signature header(s) donebox put on top."""
    while raw[:15].lower() == b"dkim-signature:":
        end = raw.find(b"\r\n", 0)
        while raw[end + 2 : end + 3] in (b" ", b"\t"):
            end = raw.find(b"\r\n", end + 2)
        raw = raw[end + 2 :]
    return raw
