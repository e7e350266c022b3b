"""Ray clusters for the sweep tests, on the loopback only, torn down whatever happens; and what their processes
listen on and talk to.

`head(...)` starts one node with `ray start --head` (its own token, HOME, ports and temp folder, a short one in
/tmp: Ray's socket paths must stay under 108 characters).
`two_nodes(...)` runs this file as a script: Ray's own test-cluster helper (`ray.cluster_utils.Cluster`) starts a
head and a worker node and holds them until its stdin closes; `ray start` cannot add a second node on the
loopback (Ray 2.60 refuses `ray start --address` when its multi-node mode is off, and with it on, moves every
node off 127.0.0.1). Both run in a process group of their own, which teardown kills.

Every process of these clusters sees RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which keeps a Linux node on 127.0.0.1
(and its servers listening there only), and RAY_AUTH_MODE=token with the cluster's token in ~/.ray/auth_token
of a HOME of its own (drivers get the same HOME: the user's token where Ray keeps it); the nodes check each
other's health fast, so that a killed node is declared dead in about a second (Ray's default takes 15 s or more).
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

HEALTH_CHECKS = {"health_check_period_ms": 500, "health_check_timeout_ms": 500, "health_check_failure_threshold": 3}
OBJECT_STORE_BYTES = 80 * 1024 * 1024
TCP_STATES = {"01": "ESTABLISHED", "0A": "LISTEN"}


@dataclass
class Cluster:
    address: str  # 127.0.0.1:PORT of the head's GCS
    pgid: int  # the process group of every process of the cluster
    home: Path  # HOME of its processes, whose ~/.ray/auth_token holds the token
    worker: dict | None = None  # two_nodes: the worker node's raylet pid and node id

    def env(self, token: str | None = None, **extra: str) -> dict[str, str]:
        """Environment of a driver on this machine: by default the user's token in ~/.ray/auth_token (the
        cluster's HOME); `token` in RAY_AUTH_TOKEN instead; token="" for none at all (a HOME without one)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(HOME=str(self.home if token != "" else _home(self.home.parent / "no-token")), **extra)
        if token:
            env["RAY_AUTH_TOKEN"] = token
        return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_env(home: Path) -> dict[str, str]:
    """The environment of a cluster's processes: token authentication with the token of `home`, loopback only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        HOME=str(home), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="token", RAY_USAGE_STATS_ENABLED="0"
    )
    return env


def spawn(command: list[str], env: dict[str, str], **options) -> subprocess.Popen:
    """A process in a session of its own (so its whole group can be killed), its text output on a pipe."""
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True, **options)


@contextmanager
def head(folder: Path, cpus: int = 1) -> Iterator[Cluster]:
    """A one-node cluster from `ray start --head`, with token authentication, on 127.0.0.1 only."""
    home, port, temp = _home(folder), free_port(), tempfile.mkdtemp(prefix="mrq-ray-")
    _write_token(home)
    command = [
        sys.executable,
        "-m",
        "ray.scripts.scripts",
        "start",
        "--head",
        f"--port={port}",
        f"--temp-dir={temp}",
        f"--num-cpus={cpus}",
        "--num-gpus=0",
        "--include-dashboard=false",
        f"--dashboard-port={free_port()}",
        f"--ray-client-server-port={free_port()}",
        f"--object-store-memory={OBJECT_STORE_BYTES}",
        f"--system-config={json.dumps(HEALTH_CHECKS)}",
        "--disable-usage-stats",
    ]
    starter = spawn(command, cluster_env(home), stderr=subprocess.STDOUT)
    try:
        output, _ = starter.communicate(timeout=120)
        assert starter.returncode == 0, output
        yield Cluster(f"127.0.0.1:{port}", starter.pid, home)
    finally:
        kill_group(starter.pid)
        shutil.rmtree(temp, ignore_errors=True)


@contextmanager
def two_nodes(folder: Path, cpus: int = 1) -> Iterator[Cluster]:
    """A head and a worker node (`cpus` CPUs each) from Ray's test-cluster helper, on 127.0.0.1 only."""
    home, port, temp = _home(folder), free_port(), tempfile.mkdtemp(prefix="mrq-ray-")
    _write_token(home)
    helper = spawn([sys.executable, __file__, temp, str(port), str(cpus)], cluster_env(home), stdin=subprocess.PIPE)
    try:
        line = helper.stdout.readline()
        assert line, "the test cluster did not start"
        info = json.loads(line)
        yield Cluster(info["address"], helper.pid, home, worker=info["worker"])
    finally:
        kill_group(helper.pid)
        shutil.rmtree(temp, ignore_errors=True)


def kill_group(pgid: int, timeout: float = 30.0) -> None:
    """SIGKILL a process group (a cluster's, a driver's) and wait until none of its processes is left."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while any(pg == pgid for _, pg, _ in processes().values()) and time.monotonic() < deadline:
        time.sleep(0.2)


def kill_node(raylet: int) -> None:
    """Lose a node: SIGKILL its raylet and every process the raylet started (its workers and agents) at once."""
    children = [pid for pid, (ppid, _, _) in processes().items() if ppid == raylet]
    for pid in [raylet, *children]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _home(folder: Path) -> Path:
    home = folder / "home"
    home.mkdir(parents=True, exist_ok=True)
    return home


def _write_token(home: Path) -> None:
    """A new token in the cluster's ~/.ray/auth_token, where `ray get-auth-token --generate` puts one."""
    (home / ".ray").mkdir(exist_ok=True)
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))


# --------------------------------------------------------------------------------------------- processes


def processes() -> dict[int, tuple[int, int, str]]:
    """Live processes: pid -> (ppid, pgid, args); zombies left out."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,pgid=,stat=,args="], capture_output=True, text=True).stdout
    procs = {}
    for line in out.splitlines():
        pid, ppid, pgid, stat, *args = line.split(None, 4)
        if not stat.startswith("Z"):
            procs[int(pid)] = (int(ppid), int(pgid), args[0] if args else "")
    return procs


def ray_processes() -> dict[int, tuple[int, int, str]]:
    """Live Ray processes (raylet, GCS, workers, agents)."""
    return {pid: p for pid, p in processes().items() if "ray" in p[2]}


def assert_no_ray_left(before: dict, groups: tuple[int, ...], timeout: float = 30.0) -> None:
    """No Ray process started since `before` is left in `groups` or orphaned (other Ray clusters untouched)."""

    def leftover():
        return [
            args
            for pid, (ppid, pgid, args) in ray_processes().items()
            if pid not in before and (pgid in groups or ppid == 1)
        ]

    deadline = time.monotonic() + timeout
    while leftover() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not leftover(), leftover()


def sockets(pids: set[int]) -> list[tuple[str, str, ipaddress._BaseAddress, ipaddress._BaseAddress]]:
    """(protocol, state, local IP, remote IP) of every TCP and UDP socket the processes `pids` hold (Linux /proc)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:  # the process ended meanwhile
            continue
    found = []
    for protocol in ("tcp", "tcp6", "udp", "udp6"):
        table = Path(f"/proc/net/{protocol}")
        if not table.exists():  # no IPv6 on this machine
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                state = TCP_STATES.get(fields[3], fields[3]) if protocol.startswith("tcp") else "UDP"
                found.append((protocol, state, _ip(fields[1]), _ip(fields[2])))
    return found


def _ip(field: str) -> ipaddress._BaseAddress:
    """'0100007F:1F90' (or 32 hex digits for IPv6, each 4-byte word little-endian) -> the IP, IPv4-mapped unwrapped."""
    raw = bytes.fromhex(field.split(":")[0])
    ip = ipaddress.ip_address(b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4)))
    return ip.ipv4_mapped or ip if ip.version == 6 else ip


def off_loopback(pids: set[int]) -> list[tuple]:
    """The sockets of `pids` bound to an address other than the loopback (all interfaces included), or talking
    to one."""
    return [s for s in sockets(pids) if not s[2].is_loopback or not (s[3].is_loopback or s[3].is_unspecified)]


def group_pids(pgid: int) -> set[int]:
    return {pid for pid, (_, pg, _) in processes().items() if pg == pgid}


# --------------------------------------------------------------------------------------------- the helper


def _serve_two_nodes(temp_dir: str, port: int, cpus: int) -> None:
    """Start a head and a worker node with Ray's test-cluster helper, print their details, hold them until stdin
    closes."""
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster as RayCluster

    node = {
        "node_ip_address": "127.0.0.1",
        "temp_dir": temp_dir,
        "num_cpus": cpus,
        "include_dashboard": False,
        "object_store_memory": OBJECT_STORE_BYTES,
    }
    cluster = RayCluster(
        initialize_head=True,
        shutdown_at_exit=False,
        head_node_args={
            **node,
            "gcs_server_port": port,
            "ray_client_server_port": free_port(),
            "_system_config": HEALTH_CHECKS,
        },
    )
    worker = cluster.add_node(**node)
    raylet = worker.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    print(json.dumps({"address": cluster.address, "worker": {"raylet": raylet, "node_id": worker.node_id}}), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    _serve_two_nodes(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
