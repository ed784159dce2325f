"""The real `ametist serve` process on a free 127.0.0.1 port, for every Python suite.

`tests/python` (the client tests), `tests/hostile` (the hostile-input suite) and
`tests/browser` (the dashboard in headless Chromium) start servers through
[`AmetistServer`]. The binary comes from $AMETIST_BIN (the suites' run.sh
set it); without it, the debug binary under $CARGO_TARGET_DIR or target/ is used.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def ametist_binary() -> Path:
    explicit = os.environ.get("AMETIST_BIN")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "debug" / "ametist"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AmetistServer:
    """One `ametist serve` process on a free 127.0.0.1 port with a temporary data dir (or
    `data_dir`, which the caller owns). Qdrant's gRPC API listens on `grpc_port`, another
    free port (never the default 6334, so that servers run side by side)."""

    def __init__(self, *sets: str, partitions: int = 2, data_dir: Path | None = None):
        self.binary = ametist_binary()
        if not self.binary.exists():
            raise RuntimeError(f"no ametist binary at {self.binary}: run `cargo build -p ametist-server`")
        self.port = free_port()
        self.grpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._tmp = tempfile.TemporaryDirectory(prefix="ametist-pytest-")
        self.data_dir = Path(data_dir) if data_dir is not None else Path(self._tmp.name) / "data"
        self.log_path = Path(self._tmp.name) / "server.log"
        # No inherited configuration: a stray ametist.yaml or AMETIST_* variable would
        # change what the tests see.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AMETIST")}
        env["RUST_LOG"] = "warn"
        args = [
            str(self.binary),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--set",
            f"partitions.count={partitions}",
            "--set",
            f"server.grpc_port={self.grpc_port}",
        ]
        grpc_arg = len(args) - 1
        for s in sets:
            args += ["--set", s]
        self._args, self._env = args, env
        self._log = open(self.log_path, "wb")
        # The port was free a moment ago; if another process took it since, try another.
        for attempt in range(3):
            self._spawn()
            try:
                self._wait_ready()
                return
            except RuntimeError:
                if attempt == 2 or self.proc.poll() is None or "in use" not in self.log().lower():
                    self.stop()
                    raise
            self.port = free_port()
            self.grpc_port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            args[args.index("--port") + 1] = str(self.port)
            args[grpc_arg] = f"server.grpc_port={self.grpc_port}"

    def _spawn(self) -> None:
        self.proc = subprocess.Popen(
            self._args, cwd=self._tmp.name, env=self._env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def restart(self, kill: bool = False) -> None:
        """Stops the process (SIGTERM, or SIGKILL with `kill`) and starts it again on the
        same data directory and port."""
        if kill:
            self.proc.kill()
        else:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self._spawn()
        self._wait_ready()

    def rss_bytes(self, peak: bool = False) -> int:
        """The process's resident memory now (or its peak, `VmHWM`), from /proc."""
        field = "VmHWM:" if peak else "VmRSS:"
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no {field} in /proc/{self.proc.pid}/status")

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ametist serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                # /healthz answers without the API key, so this works on any configuration.
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"ametist serve did not answer GET /healthz within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def client(self, prefer_grpc: bool = False, **kwargs):
        """A qdrant-client `QdrantClient` on this server, over REST or (`prefer_grpc`) over
        Qdrant's gRPC API (imported here: the hostile suite runs without qdrant-client)."""
        from qdrant_client import QdrantClient

        kwargs.setdefault("timeout", 30)
        return QdrantClient(
            url=self.url, grpc_port=self.grpc_port, prefer_grpc=prefer_grpc, **kwargs
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        self._tmp.cleanup()
