"""A real single-node Apache Kafka broker, fetched from Maven Central and run with local Java.

Tests and humans need the same broker: the pytest session fixture and
`streamhouse broker` both use `LocalBroker`. The jars are fetched once with
Maven into the project cache (`cache_dir()`), so later starts download nothing.
The JVM is started in its own process group and is told to die with its parent
(PR_SET_PDEATHSIG), so a crashed test run leaves no stray JVM behind.
"""

from __future__ import annotations

import base64
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

KAFKA_VERSION = os.environ.get("KAFKA_VERSION", "4.1.1")
MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 40


class BrokerError(RuntimeError):
    """The broker could not be fetched, formatted or started; the message says why."""


def cache_dir() -> Path:
    """Where fetched jars live: $STREAMHOUSE_CACHE_DIR, the checkout's .cache, or ~/.cache.

    A source checkout keeps its cache beside the code so that `git clean` resets it
    and CI on the same machine reuses it.
    """
    if env := os.environ.get("STREAMHOUSE_CACHE_DIR"):
        return Path(env)
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").exists():
        return checkout / ".cache"
    return Path.home() / ".cache" / "streamhouse"


def kafka_libs(version: str = KAFKA_VERSION) -> Path:
    """Fetch (once) the broker's runtime jars and return the folder holding them."""
    libs = cache_dir() / f"kafka-libs-{version}"
    if (libs / f"kafka_2.13-{version}.jar").exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (`mvn`) is not on PATH; it is needed once to fetch Kafka's jars")
    pom = resources.files(__package__) / "pom.xml"
    partial = libs.with_name(libs.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with resources.as_file(pom) as pom_path:
        cmd = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom_path),
            f"-Dkafka.version={version}",
            f"-Dmaven.repo.local={cache_dir() / 'm2'}",
            f"{MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={partial}",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise BrokerError(
            f"fetching Kafka {version} jars with Maven failed (exit {done.returncode}):\n"
            + (done.stdout + done.stderr)[-4000:]
        )
    partial.rename(libs)  # a half-finished fetch is never mistaken for a complete one
    return libs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM the JVM when the Python parent dies."""
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, base64url. It is passed as `--cluster-id=ID`: an
    id starting with '-' (1 in 32) would otherwise read as an option (and did, once)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (Kafka's clean shutdown hook), then SIGKILL after STOP_TIMEOUT_S."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no broker log)"


@dataclass
class LocalBroker:
    """One KRaft broker+controller on free loopback ports, in a fresh data directory.

    Use as a context manager, or call `start()` and `stop()`. `bootstrap` is the
    address clients use; `start_seconds` how long the start took (format + boot +
    first metadata answer).
    """

    workdir: Path | None = None
    heap: str = "512m"
    version: str = KAFKA_VERSION
    bootstrap: str = ""
    start_seconds: float = 0.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _command: list[str] = field(default_factory=list, repr=False)
    _owns_workdir: bool = field(default=False, repr=False)

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "broker.log"

    def _java(self, libs: Path) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise BrokerError("Java 17+ (`java`) is not on PATH; the Kafka broker needs it")
        log4j = resources.files(__package__) / "log4j2.properties"
        return [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:TieredStopAtLevel=1",  # faster start; a test broker never gets hot
            "-Djava.awt.headless=true",
            "-Djava.net.preferIPv4Stack=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{libs}/*",
        ]

    def start(self) -> LocalBroker:
        began = time.monotonic()
        libs = kafka_libs(self.version)
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="streamhouse-kafka-"))
            self._owns_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        bport, cport = free_port(), free_port()
        props = self.workdir / "server.properties"
        template = (resources.files(__package__) / "server.properties.in").read_text()
        props.write_text(
            template.replace("@BPORT@", str(bport))
            .replace("@CPORT@", str(cport))
            .replace("@DATA@", str(self.workdir / "data"))
        )
        java = self._java(libs)
        fmt = subprocess.run(
            [
                *java,
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={_cluster_id()}",
                "-c",
                str(props),
            ],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
        )
        if fmt.returncode != 0:
            raise BrokerError(
                f"formatting KRaft storage failed:\n{(fmt.stdout + fmt.stderr)[-4000:]}"
            )
        self._command = [*java, "kafka.Kafka", str(props)]
        self._launch()
        self.bootstrap = f"127.0.0.1:{bport}"
        try:
            self._wait_ready(began + START_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def _launch(self) -> None:
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self._command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def outage(self, seconds: float) -> None:
        """Shut the broker down cleanly, wait `seconds`, start it again on the same ports with
        the same data, and return once it answers: a broker outage, for fault tests."""
        assert self._proc is not None, "the broker is not running"
        _terminate(self._proc)
        time.sleep(seconds)
        self._launch()
        self._wait_ready(time.monotonic() + START_TIMEOUT_S)

    def _wait_ready(self, deadline: float) -> None:
        """Ready means it answers a metadata request, not merely that a port is open."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "logger": _silent_logger()})
        assert self._proc is not None
        while True:
            if self._proc.poll() is not None:
                raise BrokerError(
                    f"Kafka broker exited with code {self._proc.returncode} before it was ready; "
                    f"last lines of {self.log_path}:\n{_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"Kafka broker not ready after {START_TIMEOUT_S:.0f} s; "
                    f"last lines of {self.log_path}:\n{_tail(self.log_path)}"
                )
            try:
                meta = admin.list_topics(timeout=1.0)
                if meta.brokers:
                    return
            except Exception:
                pass
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the broker (`_terminate`) and remove a work dir of its own."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            _terminate(proc)
        if self._owns_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _silent_logger() -> logging.Logger:
    """librdkafka logs every refused connection while the broker boots; that is expected."""
    logger = logging.getLogger("streamhouse.broker.readiness")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


@contextmanager
def kafka_bootstrap() -> Iterator[tuple[str, LocalBroker | None]]:
    """The broker named by KAFKA_BOOTSTRAP_SERVERS, or a local one started (and stopped) here.

    Yields (bootstrap servers, the local broker or None): the one way tests, benchmarks
    and scripts get a Kafka to talk to."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external, None
        return
    broker = LocalBroker().start()
    try:
        yield broker.bootstrap, broker
    finally:
        broker.stop()
