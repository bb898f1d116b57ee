"""Training across processes and machines on TensorFlow's own engine (tf.distribute).

`TF_CONFIG` (TensorFlow's own cluster description) names the processes. Its cluster
picks the strategy: with parameter servers ("ps"), ParameterServerStrategy; without,
MultiWorkerMirroredStrategy.

ParameterServerStrategy (`trainer launch --strategy ps`):

    chief    runs `trainer train`: reads the data, samples the batches, schedules the steps
             and writes the run (tf.distribute.coordinator.ClusterCoordinator)
    worker   computes training steps (`trainer serve`)
    ps       parameter servers: hold the embedding tables and the optimizer's moments;
             a step's row-wise update is applied there (`trainer serve`)

TensorFlow's documented path for large embedding tables: the tables stay on the
parameter servers and a step moves only the rows of its batch (read, then scattered
back), so the tables never travel whole and workers update them asynchronously.

MultiWorkerMirroredStrategy (`trainer launch --strategy mirrored`, the default: the faster
cluster in the measurements of docs/distributed.md, and it trains what one process trains):

    worker   every worker runs `trainer train` with the same arguments: it reads the data,
             samples the same global batches (same seed) and computes its share of each;
             the batch rows' gradients are all-reduced (CPU collectives over gRPC, ring),
             so every worker applies the same row-wise update to its copy of the tables.
             Worker 0 (or the "chief", if the cluster names one) writes the checkpoints
             and the run.

`trainer launch` starts either cluster on one machine, on loopback; on several
machines each one runs its process with the same cluster in its TF_CONFIG
(docs/distributed.md).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Iterator

from movielinks.trainer.errors import TrainerError

ROLES = ("chief", "worker", "ps")
STRATEGIES = ("mirrored", "ps")


@dataclasses.dataclass(frozen=True)
class Task:
    """This process's place in the cluster TF_CONFIG describes."""

    kind: str  # chief, worker or ps
    index: int
    strategy: str  # "ps" when the cluster has parameter servers, else "mirrored"
    is_chief: bool  # writes the checkpoints and the run


def task() -> Task | None:
    """This process's Task from TF_CONFIG, or None when there is no TF_CONFIG (a single-process run)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
        cluster, kind, index = config["cluster"], config["task"]["type"], int(config["task"]["index"])
        names = sorted(cluster)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise TrainerError(f"TF_CONFIG is not a cluster description ({e}); see docs/distributed.md") from e
    strategy = "ps" if cluster.get("ps") else "mirrored"
    allowed = ROLES if strategy == "ps" else ("chief", "worker")
    if kind not in allowed or index < 0 or index >= len(cluster.get(kind) or ()):
        raise TrainerError(f"TF_CONFIG: task {kind!r} {index} in a cluster of {names}; this trainer runs a chief, "
                           "workers and parameter servers (ps), or workers alone (MultiWorkerMirroredStrategy)")
    if strategy == "ps" and not cluster.get("chief"):
        raise TrainerError(f"TF_CONFIG: a cluster with parameter servers needs a chief, got {names}")
    # TensorFlow's rule: the chief if the cluster names one, else worker 0.
    is_chief = kind == "chief" or ("chief" not in cluster and kind == "worker" and index == 0)
    return Task(kind, index, strategy, is_chief)


class ParameterServers:
    """The chief's view of a ParameterServerStrategy cluster: its strategy (variables are
    created in `scope()`) and its coordinator (which runs scheduled steps on the workers)."""

    is_chief = True

    def __init__(self) -> None:
        import tensorflow as tf

        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        self.strategy = tf.distribute.ParameterServerStrategy(resolver)
        self.coordinator = tf.distribute.coordinator.ClusterCoordinator(self.strategy)
        self.workers = len(resolver.cluster_spec().as_dict().get("worker", []))
        self.parameter_servers = len(resolver.cluster_spec().as_dict()["ps"])

    def scope(self):
        return self.strategy.scope()

    def describe(self) -> str:
        return f"{self.workers} workers, {self.parameter_servers} parameter servers (ParameterServerStrategy, TF_CONFIG)"

    def leave(self) -> None:
        """Nothing to wait for: the workers and parameter servers serve until they are stopped."""


class MirroredWorkers:
    """One worker's view of a MultiWorkerMirroredStrategy cluster: its strategy (the
    tables, created in `scope()`, are copied on every worker), how many workers share
    each batch and which share is this one's."""

    def __init__(self, role: Task) -> None:
        import tensorflow as tf

        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        # CPU collectives: TensorFlow's ring all-reduce over the workers' gRPC servers.
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING)
        self.strategy = tf.distribute.MultiWorkerMirroredStrategy(resolver, communication_options=options)
        self.workers = self.strategy.num_replicas_in_sync
        # Shares of a batch are numbered chief first: 0 .. workers - 1.
        has_chief = "chief" in resolver.cluster_spec().as_dict()
        self.index = role.index + (1 if has_chief and role.kind == "worker" else 0)
        self.is_chief = role.is_chief

    def scope(self):
        return self.strategy.scope()

    def describe(self) -> str:
        return f"{self.workers} workers, this one is {self.index} (MultiWorkerMirroredStrategy, TF_CONFIG)"

    def leave(self) -> None:
        """Return once every worker has called leave(): the chief after writing the run, the
        others when they have trained. TensorFlow's coordination service reports a worker
        that exits before the others as crashed, so the workers exit together."""
        import tensorflow as tf

        @tf.function
        def all_reduce_one():
            return self.strategy.run(lambda: tf.distribute.get_replica_context().all_reduce("sum", tf.constant(1.0)))

        all_reduce_one()


def training_distribution() -> ParameterServers | MirroredWorkers | None:
    """How this `trainer train` process trains: None alone, else its cluster's strategy.
    Call it before TensorFlow runs anything: collectives are configured at start-up."""
    role = task()
    if role is None:
        return None
    if role.strategy == "mirrored":
        return MirroredWorkers(role)
    if role.kind != "chief":
        raise TrainerError(f"TF_CONFIG says this process is {role.kind} {role.index}: run `trainer serve` there, "
                           "and `trainer train` on the chief")
    return ParameterServers()


def serve() -> None:
    """Run this process's worker or parameter server (from TF_CONFIG) until it is stopped."""
    role = task()
    if role is not None and role.strategy == "mirrored":
        raise TrainerError("TF_CONFIG names no parameter servers (MultiWorkerMirroredStrategy): every worker runs "
                           "`trainer train` with the same arguments, not `trainer serve`")
    if role is None or role.kind == "chief":
        raise TrainerError("`trainer serve` runs a worker or a parameter server: set TF_CONFIG with task type "
                           "worker or ps")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    server = tf.distribute.Server(resolver.cluster_spec(), job_name=role.kind, task_index=role.index,
                                  protocol="grpc", start=True)
    server.join()


def launch(train_args: list[str], workers: int, parameter_servers: int | None = None, *, strategy: str = "mirrored",
           timeout_s: float | None = None) -> int:
    """Run `trainer train TRAIN_ARGS` on a local cluster on loopback and return the exit code
    of the process that writes the run.

    `strategy` "mirrored": `workers` processes each run `trainer train TRAIN_ARGS`
    (MultiWorkerMirroredStrategy); worker 0 writes the run. "ps": `trainer train` runs as
    the chief of `workers` workers and `parameter_servers` parameter servers (default 1),
    started first. Every process is stopped at the end, or as soon as one fails."""
    if strategy not in STRATEGIES:
        raise TrainerError(f"unknown --strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if strategy == "mirrored" and parameter_servers:
        raise TrainerError("--ps is for --strategy ps; a mirrored cluster has workers only")
    parameter_servers = 1 if parameter_servers is None and strategy == "ps" else parameter_servers or 0
    if workers < 1 or (strategy == "ps" and parameter_servers < 1):
        raise TrainerError(f"--workers and --ps must be at least 1, got {workers} and {parameter_servers}")
    # SIGTERM stops the whole cluster, as Ctrl-C does: nothing is left running.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if strategy == "mirrored":
            cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(workers)]}
            return _run_mirrored(train_args, cluster, timeout_s)
        ports = _free_ports(1 + workers + parameter_servers)
        cluster = {
            "chief": [f"127.0.0.1:{ports[0]}"],
            "worker": [f"127.0.0.1:{p}" for p in ports[1 : 1 + workers]],
            "ps": [f"127.0.0.1:{p}" for p in ports[1 + workers :]],
        }
        with _servers(cluster) as servers:
            return _run_chief(train_args, cluster, servers, timeout_s)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_chief(train_args: list[str], cluster: dict, servers: list[subprocess.Popen], timeout_s: float | None) -> int:
    chief = subprocess.Popen([sys.executable, "-m", "movielinks.trainer", "train", *train_args], env=_env(cluster, "chief", 0))
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while chief.poll() is None:
            dead = [s for s in servers if s.poll() is not None]
            if dead or (deadline is not None and time.monotonic() > deadline):
                reason = "a worker or parameter server exited" if dead else f"it ran past {timeout_s:g} s"
                raise TrainerError(f"the distributed training stopped: {reason}")
            time.sleep(0.2)
        return chief.returncode
    finally:
        if chief.poll() is None:
            chief.kill()
            chief.wait()


def _run_mirrored(train_args: list[str], cluster: dict, timeout_s: float | None) -> int:
    """Every worker runs `trainer train`; worker 0's output is shown (the others' would repeat it)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with _processes([([sys.executable, "-m", "movielinks.trainer", "train", *train_args], _env(cluster, "worker", i),
                      None if i == 0 else subprocess.DEVNULL)
                     for i in range(len(cluster["worker"]))]) as workers:
        while any(w.poll() is None for w in workers):
            failed = [i for i, w in enumerate(workers) if w.poll() not in (None, 0)]
            if failed:
                # The others would wait for it in the next all-reduce: stop them.
                raise TrainerError(f"the distributed training stopped: worker {failed[0]} exited with code "
                                   f"{workers[failed[0]].returncode}")
            if deadline is not None and time.monotonic() > deadline:
                raise TrainerError(f"the distributed training stopped: it ran past {timeout_s:g} s")
            time.sleep(0.2)
        return workers[0].returncode


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _servers(cluster: dict) -> Iterator[list[subprocess.Popen]]:
    with _processes([([sys.executable, "-m", "movielinks.trainer", "serve"], _env(cluster, kind, i), subprocess.DEVNULL)
                     for kind in ("ps", "worker") for i in range(len(cluster[kind]))]) as started:
        yield started


@contextlib.contextmanager
def _processes(commands: list[tuple[list[str], dict, int | None]]) -> Iterator[list[subprocess.Popen]]:
    """Start each (argv, env, stdout) and, on leaving, stop those still running (SIGTERM, then kill)."""
    started = []
    try:
        for argv, env, stdout in commands:
            started.append(subprocess.Popen(argv, env=env, stdout=stdout))
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _env(cluster: dict, kind: str, index: int) -> dict[str, str]:
    return dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}}))


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
