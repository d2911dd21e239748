"""deploy/nginx.conf run by Debian's nginx on a free 127.0.0.1 port, in front of given localive plain ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from localive.testing.server import free_port

CONF = Path(__file__).parent.parent.parent / "deploy" / "nginx.conf"
MISSING = "nginx is not installed: apt-get install nginx (scripts/test.sh installs it)"
UPSTREAMS = ("localive-1:8766", "localive-2:8766")


def binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        raise RuntimeError(MISSING)  # the tests fail, never skip: CI installs it
    return found


def render(directory: Path, port: int, plain_port: int, upstream_ports: tuple[int, int], tls: Path) -> str:
    """The shipped file with local addresses, the certificate in `tls` (server.pem, server-key.pem: a localive
    data dir's tls/), and its files (temp, log, pid) in `directory`."""
    text = CONF.read_text()
    for name, upstream in zip(UPSTREAMS, upstream_ports, strict=True):
        assert name in text, f"{CONF} no longer names {name}"
        text = text.replace(name, f"127.0.0.1:{upstream}")
    for shipped, local in (("listen 8443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
                           ("listen 8080;", f"listen 127.0.0.1:{plain_port};"),
                           ("/etc/nginx/tls/", f"{tls}/")):
        assert shipped in text, f"{CONF} no longer says {shipped}"
        text = text.replace(shipped, local)
    text = text.replace("/var/log/nginx/access.log", str(directory / "access.log"))
    temp = "".join(f"    {kind}_temp_path {directory / kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return text.replace("http {\n", "http {\n" + temp, 1)


@dataclass
class Nginx:
    directory: Path
    port: int  # TLS
    plain_port: int
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, directory: Path, upstream_ports: tuple[int, int], tls: Path) -> Nginx:
        directory.mkdir(parents=True, exist_ok=True)
        port, plain_port = free_port(), free_port()
        conf = directory / "nginx.conf"
        conf.write_text(render(directory, port, plain_port, upstream_ports, tls))
        main = f"daemon off; pid {directory / 'nginx.pid'}; error_log {directory / 'error.log'} info;"
        if os.geteuid() == 0:
            main += " user root;"  # the workers must reach the test's private folders
        with (directory / "stderr.log").open("wb") as stderr:  # the child keeps its own descriptor
            process = subprocess.Popen([binary(), "-p", str(directory), "-c", str(conf), "-g", main],
                                       stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return cls(directory, port, plain_port, process)
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                err = (directory / "stderr.log").read_text(errors="replace")
                raise RuntimeError(f"nginx did not start: {err}\n{cls.log_of(directory)}")
            time.sleep(0.05)

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @staticmethod
    def log_of(directory: Path) -> str:
        path = directory / "error.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else "(no error log)"

    def access_log(self) -> str:
        path = self.directory / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: nginx's own
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
