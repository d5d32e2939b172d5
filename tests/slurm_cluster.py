"""A real single-node Slurm cluster on localhost, for tests: munged, MariaDB, slurmdbd,
slurmctld and slurmd from Debian's packages, every file in one temporary folder.

Each daemon runs in the foreground as a child of the test process and gets SIGKILL if that
process dies (``PR_SET_PDEATHSIG``), so a killed test run leaves none behind. Accounting
(slurmdbd on MariaDB) is there because ``submitit`` asks ``sacct`` for job states: without it,
a job killed before writing its result is never seen to end.

    with SlurmCluster(folder) as cluster:    # exports SLURM_CONF while it runs
        subprocess.run(["sbatch", ...])
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PROGRAMS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd", "sbatch", "sacct")
SQL_USER, SQL_PASSWORD = "slurm", "companion-test"


def require_programs() -> None:
    """Refuse to start where a program of the cluster is missing (``make test-deps`` installs
    the Debian packages that hold them)."""
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    if missing:
        raise RuntimeError(
            f"Slurm test cluster: {', '.join(missing)} missing; `make test-deps` installs the "
            "Debian packages (apt-get, root)"
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _wait_for(what: str, ready, timeout: float = 60.0, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.1)
    tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s\n{tail}")


def _succeeds(*commands: list[str]) -> bool:
    """Whether the pipeline ``commands[0] | commands[1] | ...`` exits with status 0."""
    data = b""
    for command in commands:
        result = subprocess.run(command, input=data, capture_output=True)
        if result.returncode != 0:
            return False
        data = result.stdout
    return True


class SlurmCluster:
    """Start with ``with SlurmCluster(folder) as cluster``; ``cluster.env`` is the
    environment (with ``SLURM_CONF``) in which Slurm's commands find the cluster."""

    def __init__(self, folder: Path, cpus: int | None = None):
        self.folder = Path(folder)
        self.cpus = cpus
        self.daemons: list[tuple[str, subprocess.Popen]] = []
        self.munge_dir: Path | None = None
        self._saved_conf = os.environ.get("SLURM_CONF")

    # ------------------------------------------------------------------ configuration

    def _write_configs(self) -> None:
        f = self.folder
        for sub in ("state", "spool", "mysql", "log"):
            (f / sub).mkdir(parents=True, exist_ok=True)
        # munge's socket: every parent needs o+x and the path must stay short
        self.munge_dir = Path(tempfile.mkdtemp(prefix="munge-", dir="/tmp"))
        self.munge_dir.chmod(0o755)
        self.munge_socket = self.munge_dir / "socket"
        key = f / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        self.ports = {name: _free_port() for name in ("ctld", "slurmd", "dbd", "sql")}
        self.sql_socket = self.munge_dir / "mysql.sock"
        probe = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True)
        facts = dict(re.findall(r"(\w+)=(\S+)", probe.stdout))
        cpus = self.cpus or int(facts["CPUs"])
        memory = int(facts["RealMemory"])
        auth = f"AuthType=auth/munge\nAuthInfo=socket={self.munge_socket}\n"
        (f / "slurmdbd.conf").write_text(
            auth
            + f"DbdHost=localhost\nDbdAddr=127.0.0.1\nDbdPort={self.ports['dbd']}\n"
            + "SlurmUser=root\nStorageType=accounting_storage/mysql\nStorageHost=127.0.0.1\n"
            + f"StoragePort={self.ports['sql']}\nStorageUser={SQL_USER}\n"
            + f"StoragePass={SQL_PASSWORD}\nStorageLoc=slurm_acct_db\n"
            + f"PidFile={f}/slurmdbd.pid\nLogFile={f}/log/slurmdbd.log\n"
        )
        (f / "slurmdbd.conf").chmod(0o600)
        (f / "slurm.conf").write_text(
            auth
            + "ClusterName=companion\nSlurmctldHost=localhost\n"
            + f"SlurmctldPort={self.ports['ctld']}\nSlurmdPort={self.ports['slurmd']}\n"
            + "SlurmUser=root\nSlurmdUser=root\n"
            + f"StateSaveLocation={f}/state\nSlurmdSpoolDir={f}/spool\n"
            + f"SlurmctldPidFile={f}/slurmctld.pid\nSlurmdPidFile={f}/slurmd.pid\n"
            + f"SlurmctldLogFile={f}/log/slurmctld.log\nSlurmdLogFile={f}/log/slurmd.log\n"
            + "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nMpiDefault=none\n"
            + "SwitchType=switch/none\nMailProg=/bin/true\nReturnToService=2\nKillWait=2\n"
            + "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0\n"
            + "SelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\n"
            + "SlurmdParameters=config_overrides\n"
            + "AccountingStorageType=accounting_storage/slurmdbd\n"
            + f"AccountingStorageHost=localhost\nAccountingStoragePort={self.ports['dbd']}\n"
            + f"AccountingStoragePass={self.munge_socket}\n"
            + "JobAcctGatherType=jobacct_gather/linux\nJobAcctGatherFrequency=30\n"
            + f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} "
            + "State=UNKNOWN\n"
            + "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n"
        )
        self.env = {**os.environ, "SLURM_CONF": str(f / "slurm.conf")}

    # ------------------------------------------------------------------ daemons

    def _start(self, name: str, command: list[str]) -> subprocess.Popen:
        with open(self.folder / "log" / f"{name}.out", "ab") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                preexec_fn=_die_with_parent,
                cwd=self.folder,
            )
        self.daemons.append((name, process))
        return process

    def start(self) -> SlurmCluster:
        require_programs()
        self._write_configs()
        f, sock = self.folder, str(self.munge_socket)
        self._start(
            "munged",
            [
                "munged", "--foreground", "--force", f"--socket={sock}",
                f"--key-file={f}/munge.key", f"--pid-file={f}/munged.pid",
                f"--log-file={f}/log/munged.log", f"--seed-file={f}/munged.seed",
            ],
        )  # fmt: skip
        _wait_for(
            "munged",
            lambda: _succeeds(["munge", "-n", "-S", sock], ["unmunge", "-S", sock]),
            log=f / "log" / "munged.log",
        )
        subprocess.run(
            [
                "mariadb-install-db", "--no-defaults", "--user=root", f"--datadir={f}/mysql",
                "--skip-test-db", "--auth-root-authentication-method=socket",
            ],
            check=True, capture_output=True,
        )  # fmt: skip
        self._start(
            "mariadbd",
            [
                "mariadbd", "--no-defaults", "--user=root", f"--datadir={f}/mysql",
                "--bind-address=127.0.0.1", f"--port={self.ports['sql']}",
                f"--socket={self.sql_socket}", f"--pid-file={f}/mariadbd.pid",
                "--skip-log-bin", "--innodb-buffer-pool-size=32M",
            ],
        )  # fmt: skip
        sql = ["mariadb", "--no-defaults", "-u", "root", f"--socket={self.sql_socket}"]
        _wait_for(
            "MariaDB", lambda: _succeeds([*sql, "-e", "SELECT 1"]), log=f / "log" / "mariadbd.out"
        )
        grant = (
            f"CREATE USER '{SQL_USER}'@'127.0.0.1' IDENTIFIED BY '{SQL_PASSWORD}'; "
            f"GRANT ALL ON slurm_acct_db.* TO '{SQL_USER}'@'127.0.0.1';"
        )
        subprocess.run([*sql, "-e", grant], check=True, capture_output=True)
        self._start("slurmdbd", ["slurmdbd", "-D"])
        _wait_for(
            "slurmdbd",
            lambda: _port_open(self.ports["dbd"]),
            log=f / "log" / "slurmdbd.log",
        )
        conf = self.env["SLURM_CONF"]
        self._start("slurmctld", ["slurmctld", "-D", "-i", "-f", conf])
        self._start("slurmd", ["slurmd", "-D", "-f", conf, "-N", "localhost"])
        _wait_for("slurmd", self._idle, log=f / "log" / "slurmctld.log")
        os.environ["SLURM_CONF"] = conf
        return self

    def _idle(self) -> bool:
        answer = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=self.env
        )
        return answer.returncode == 0 and answer.stdout.strip() == "idle"

    def stop(self) -> None:
        """Cancel every job, wait for the queue to empty, then stop the daemons in reverse
        order of their start and wait for each."""
        if any(name == "slurmctld" for name, _ in self.daemons):
            subprocess.run(["scancel", "--full", "--user=root"], env=self.env, capture_output=True)
            with contextlib.suppress(RuntimeError):
                _wait_for("an empty queue", self.queue_empty, timeout=20)
        for _, process in reversed(self.daemons):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.daemons.clear()
        if self._saved_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = self._saved_conf
        if self.munge_dir is not None:
            shutil.rmtree(self.munge_dir, ignore_errors=True)

    def queue_empty(self) -> bool:
        answer = subprocess.run(
            ["squeue", "-h", "-o", "%i"], capture_output=True, text=True, env=self.env
        )
        return answer.returncode == 0 and not answer.stdout.strip()

    def __enter__(self) -> SlurmCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
