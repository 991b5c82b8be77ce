"""A throwaway Dovecot on a loopback port with its own maildirs and a test user (IMAP tests).

Needs Debian's ``dovecot-imapd`` and root (Dovecot drops to its own users); see
/work/shared/notes/dovecot-test-server.md for the recipe this follows.
"""

from __future__ import annotations

import imaplib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from imapclient import IMAPClient

USER, PASSWORD = "test@example.com", "secret"

CONF = """
base_dir = {tmp}/run
state_dir = {tmp}/state
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {tmp}/dovecot.log
default_internal_user = dovecot
default_login_user = dovenull
default_internal_group = dovecot
first_valid_uid = 100
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {tmp}/users
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={tmp}/mail/%u
}}
mail_location = maildir:~/Maildir
# IDLE reports what inotify tells at once; the periodic re-check that would also find what came
# before IDLE started is pushed out of every test's reach, so a test sees the client's own handling
mailbox_idle_check_interval = 10 mins
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available() -> str | None:
    """Why Dovecot cannot be started here, or None."""
    if not shutil.which("dovecot"):
        return "the dovecot binary is missing (`make services` installs dovecot-imapd)"
    if os.geteuid() != 0:
        return "starting Dovecot needs root"
    return None


class Dovecot:
    """One private Dovecot: ``start``, ``stop``, ``client()`` as the test user, ``url(folder)``."""

    def __init__(self, tmp: Path, tls: bool = False):
        self.tmp = tmp
        self.port = _free_port()
        self.imaps_port = _free_port() if tls else 0
        ssl = "ssl = no"
        if tls:  # a certificate for "localhost" from a CA of our own (ca.pem, for IMAP_CA_FILE)
            from tests.app.web.sns_fake import tls_files

            cert, key, self.ca_file = tls_files(tmp)
            ssl = f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}"
        self.conf = tmp / "dovecot.conf"
        for d in ("run", "state", "mail"):
            (tmp / d).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(CONF.format(tmp=tmp, port=self.port, imaps_port=self.imaps_port, ssl=ssl))
        (tmp / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        shutil.chown(tmp / "mail", "dovecot", "dovecot")
        os.chmod(tmp, 0o755)

    def start(self) -> None:
        subprocess.run(["dovecot", "-c", str(self.conf)], check=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("Dovecot did not start: " + (self.tmp / "dovecot.log").read_text()[-2000:])

    def stop(self) -> None:
        subprocess.run(["dovecot", "-c", str(self.conf), "stop"], check=False)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    time.sleep(0.1)
            except OSError:
                return

    def client(self) -> IMAPClient:
        c = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        c.login(USER, PASSWORD)
        return c

    def url(self, folder: str, **query) -> str:
        q = "&".join(f"{k}={v}" for k, v in {"starttls": "0", **query}.items())
        return f"imap://test%40example.com:{PASSWORD}@127.0.0.1:{self.port}/{folder}?{q}"

    def append(self, folder: str, raw: bytes) -> None:
        with self.client() as c:
            if not c.folder_exists(folder):
                try:
                    c.create_folder(folder)
                except IMAPClient.Error as e:  # the poller created it meanwhile
                    if "ALREADYEXISTS" not in str(e).upper():
                        raise
            c.append(folder, raw)

    def uids(self, folder: str) -> list[int]:
        for attempt in range(5):  # Dovecot aborts a session whose folder was just deleted and re-created
            try:
                with self.client() as c:
                    if not c.folder_exists(folder):
                        return []
                    c.select_folder(folder, readonly=True)
                    return sorted(c.search(["ALL"]))
            except imaplib.IMAP4.abort:
                if attempt == 4:
                    raise
                time.sleep(0.2)
        return []
