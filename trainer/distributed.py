"""Training across processes and machines on TensorFlow's own engine (tf.distribute).

`TF_CONFIG` (TensorFlow's own cluster description) names the processes:

    chief    runs `trainer train`: reads the data, samples the batches, schedules the steps
             and writes the run (tf.distribute.coordinator.ClusterCoordinator)
    worker   computes training steps (`trainer serve`)
    ps       parameter servers: hold the embedding tables and the optimizer's moments;
             a step's row-wise update is applied there (`trainer serve`)

ParameterServerStrategy is TensorFlow's documented path for large embedding tables:
the tables stay on the parameter servers and a step moves only the rows of its batch
(read, then scattered back), so the tables never travel whole and workers update
them asynchronously. `trainer launch` starts such a cluster on one machine, on
loopback; on several machines each one runs `trainer serve` (or `trainer train`
for the chief) with the same cluster in its TF_CONFIG (README, "Scale").
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Iterator

from trainer.errors import TrainerError

ROLES = ("chief", "worker", "ps")


def task() -> tuple[str, int] | None:
    """(task type, index) from TF_CONFIG, or None when it names no cluster with parameter servers."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
        cluster, kind, index = config["cluster"], config["task"]["type"], int(config["task"]["index"])
    except (ValueError, KeyError, TypeError) as e:
        raise TrainerError(f"TF_CONFIG is not a cluster description ({e}); see the README's Scale section") from e
    if kind not in ROLES or not cluster.get("ps"):
        raise TrainerError(f"TF_CONFIG: task type {kind!r} in a cluster of {sorted(cluster)}; this trainer runs "
                           "a chief, workers and parameter servers (ps)")
    return kind, index


class Distribution:
    """The chief's view of the cluster: its strategy (variables are created in `scope()`)
    and its coordinator (which runs scheduled steps on the workers)."""

    def __init__(self) -> None:
        import tensorflow as tf

        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        self.strategy = tf.distribute.ParameterServerStrategy(resolver)
        self.coordinator = tf.distribute.coordinator.ClusterCoordinator(self.strategy)
        self.workers = len(resolver.cluster_spec().as_dict().get("worker", []))
        self.parameter_servers = len(resolver.cluster_spec().as_dict()["ps"])

    def scope(self):
        return self.strategy.scope()


def chief_distribution() -> Distribution | None:
    """A Distribution when this process is a cluster's chief; None for a single-process run."""
    role = task()
    if role is None:
        return None
    if role[0] != "chief":
        raise TrainerError(f"TF_CONFIG says this process is {role[0]} {role[1]}: run `trainer serve` there, "
                           "and `trainer train` on the chief")
    return Distribution()


def serve() -> None:
    """Run this process's worker or parameter server (from TF_CONFIG) until it is stopped."""
    role = task()
    if role is None or role[0] == "chief":
        raise TrainerError("`trainer serve` runs a worker or a parameter server: set TF_CONFIG with task type "
                           "worker or ps")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    server = tf.distribute.Server(resolver.cluster_spec(), job_name=role[0], task_index=role[1], protocol="grpc",
                                  start=True)
    server.join()


def launch(train_args: list[str], workers: int, parameter_servers: int, *, timeout_s: float | None = None) -> int:
    """Run `trainer train TRAIN_ARGS` as the chief of a local cluster on loopback: `workers`
    workers and `parameter_servers` parameter servers, started first and stopped at the end
    (or when the chief fails). Returns the chief's exit code."""
    if workers < 1 or parameter_servers < 1:
        raise TrainerError(f"--workers and --ps must be at least 1, got {workers} and {parameter_servers}")
    ports = _free_ports(1 + workers + parameter_servers)
    cluster = {
        "chief": [f"127.0.0.1:{ports[0]}"],
        "worker": [f"127.0.0.1:{p}" for p in ports[1 : 1 + workers]],
        "ps": [f"127.0.0.1:{p}" for p in ports[1 + workers :]],
    }
    # SIGTERM stops the whole cluster, as Ctrl-C does: nothing is left running.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with _servers(cluster) as servers:
            return _run_chief(train_args, cluster, servers, timeout_s)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_chief(train_args: list[str], cluster: dict, servers: list[subprocess.Popen], timeout_s: float | None) -> int:
    chief = subprocess.Popen([sys.executable, "-m", "trainer", "train", *train_args], env=_env(cluster, "chief", 0))
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


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _servers(cluster: dict) -> Iterator[list[subprocess.Popen]]:
    started = [
        subprocess.Popen([sys.executable, "-m", "trainer", "serve"], env=_env(cluster, kind, i),
                         stdout=subprocess.DEVNULL)
        for kind in ("ps", "worker") for i in range(len(cluster[kind]))
    ]
    try:
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
