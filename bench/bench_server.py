"""Service speed on a real index, printed as the table of docs/speed.md.

    python -m bench.bench_server --index work/index [--seconds 5]

(Without a trained run, `python -m bench.make_synthetic_index --out work/synthetic-index`
publishes an index of the real catalogue's size from random vectors.)

Starts the real server process on a free loopback port and measures, with real
gRPC clients: start to serving, similar-movies latency for one client (random
titles), throughput with 8 client processes, the batch RPC in titles/s, Recommend
latency; and in-process, FAISS search against the notebook's numpy argsort. Then the
floor, a bare Python gRPC echo server (bench/echo_server.py) timed by the same client,
and the service's latency and throughput as ratios to it (machines differ up to 3x
from day to day; the ratios measured in one run do not).
Every loop is bounded in count and time; the server is stopped at the end.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def start_server(index: str, processes: int = 1) -> tuple[subprocess.Popen, str, float]:
    """The server on a free loopback port: (process, address, seconds from spawn to health SERVING of its
    first process). With `processes` > 1 it returns once every other process has said it serves."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "movielinks.server", "--index", index, "--port", "0",
                                "--processes", str(processes)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        match = re.search(r"listening on (\S+:\d+)", line)
        if match and not re.search(r"process \d+: ", line):
            address = match.group(1)
            break
    else:
        raise SystemExit("server did not start")
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=10)
    start_s = time.perf_counter() - started
    others = processes - 1
    while others:
        line = process.stderr.readline()
        if not line:
            raise SystemExit("a serving process of the server did not start")
        others -= bool(re.search(r"process \d+: movielinks server listening", line))
    return process, address, start_s


def start_echo(*options: str) -> tuple[subprocess.Popen, str]:
    """The bare echo server (bench/echo_server.py) on a free loopback port."""
    process = subprocess.Popen([sys.executable, "-m", "bench.echo_server", *options], cwd=ROOT,
                               stderr=subprocess.PIPE, text=True)
    match = re.search(r"listening on (\S+:\d+)", process.stderr.readline())
    if not match:
        process.kill()
        raise SystemExit("echo server did not start")
    return process, match.group(1)


def echo_loop(address: str, payload: bytes, seconds: float, seed: int, results, start=None) -> None:
    """One client process calling the echo server for `seconds` (from when every client at `start`, a
    barrier, is connected); puts (count, p50 ms, p99 ms)."""
    import grpc

    from bench.echo_server import METHOD

    latencies = []
    with grpc.insecure_channel(address) as channel:
        echo = channel.unary_unary(METHOD)
        echo(payload, wait_for_ready=True)
        if start is not None:
            start.wait(timeout=120)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline and len(latencies) < 1_000_000:
            t = time.perf_counter()
            echo(payload)
            latencies.append(time.perf_counter() - t)
    results.put((len(latencies), *percentiles(latencies)))


def measure_echo(payload: bytes, *, seconds: float) -> dict[str, float]:
    """The floor: one client's p50 / p99 over `seconds` of calls and 8 client processes' calls/s,
    with the server's thread pool; and 8 clients' calls/s with the pool it had before (8 threads),
    and with as many processes as cores (as `server --processes`)."""
    found: dict[str, float] = {}
    processes = ("--processes", str(os.cpu_count() or 1))
    for key, options in (("echo", ()), ("echo_threads8", ("--threads", "8")), ("echo_processes", processes)):
        process, address = start_echo(*options)
        try:
            if key == "echo":
                single = multiprocessing.Queue()
                echo_loop(address, payload, seconds, 0, single)
                _, found["echo_p50_ms"], found["echo_p99_ms"] = single.get(timeout=30)
            answers = concurrent_clients(echo_loop, (address, payload), seconds)
            found[f"{key}_8_clients_per_s"] = sum(a[0] for a in answers) / seconds
        finally:
            process.terminate()
            process.wait(timeout=30)
    return found


def concurrent_clients(loop, args: tuple, seconds: float, n: int = 8) -> list[tuple[int, float, float]]:
    """`n` client processes each running loop(*args, seconds, seed, results, start) at once; their answers.

    Spawned, not forked (a fork of a process that has used gRPC can hang in the child, and here did),
    and timed from a barrier that every client reaches once connected, so that all `n` call together."""
    context = multiprocessing.get_context("spawn")
    results, start = context.Queue(), context.Barrier(n)
    clients = [context.Process(target=loop, args=(*args, seconds, seed, results, start)) for seed in range(n)]
    for c in clients:
        c.start()
    answers = [results.get(timeout=seconds + 120) for _ in clients]
    for c in clients:
        c.join()
    return answers


def percentiles(samples_s: list[float]) -> tuple[float, float]:
    ms = np.array(samples_s) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def client_loop(address: str, titles: list[str], seconds: float, seed: int, results, start=None) -> None:
    """One client process: SimilarMovies on random titles for `seconds` (from when every client at `start`
    is connected); puts (count, p50 ms, p99 ms)."""
    import grpc

    from movielinks.proto import movielinks_pb2 as pb
    from movielinks.proto import movielinks_pb2_grpc as pb_grpc

    rng = np.random.default_rng(seed)
    latencies = []
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.MovielinksStub(channel)
        stub.SimilarMovies(pb.SimilarMoviesRequest(title=titles[0], k=10), wait_for_ready=True)
        if start is not None:
            start.wait(timeout=120)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline and len(latencies) < 1_000_000:
            t = time.perf_counter()
            stub.SimilarMovies(pb.SimilarMoviesRequest(title=titles[rng.integers(len(titles))], k=10))
            latencies.append(time.perf_counter() - t)
    results.put((len(latencies), *percentiles(latencies)))


def server_memory_mb(pid: int) -> tuple[float, float]:
    """(resident now, peak resident) of process `pid`, in MB, from /proc."""
    fields = _status(pid)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def shared_memory_mb(pid: int) -> float:
    """The proportional resident memory (PSS: a page shared by n processes counts 1/n in each) of
    process `pid` and its children, summed, in MB: what processes sharing mapped files hold together."""
    children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(int(p.name)) == pid]
    return sum(_pss_kb(p) for p in (pid, *children)) / 1024


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):  # ended meanwhile
        return None


def _pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def own_memory_mb(pid: int) -> float:
    """What process `pid` holds itself (RssAnon: not pages of mapped files), in MB."""
    return int(_status(pid)["RssAnon"].split()[0]) / 1024


def mapped_files_mb(pid: int, under: str | None = None) -> str:
    """The resident pages of each file process `pid` maps, largest first, as "name 503, name 420 MB"
    (from /proc/PID/smaps; files under 1 MB left out; only those under directory `under` if given)."""
    resident: dict[str, int] = {}
    mapping = None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            mapping = fields[5] if len(fields) > 5 and fields[5].startswith(under or "/") else None
        elif mapping and fields[:1] == ["Rss:"]:
            resident[mapping] = resident.get(mapping, 0) + int(fields[1])
    files = sorted(((kb / 1024, Path(name).name) for name, kb in resident.items() if kb >= 1024), reverse=True)
    return ", ".join(f"{name} {mb:,.0f}" for mb, name in files) + " MB" if files else "none of 1 MB or more"


def memory_after(pid: int, phase: str, index: str) -> dict[str, Any]:
    """What server process `pid` holds resident after `phase` of a load: its RSS, its own part
    (RssAnon) in MB, and the resident pages of each file of the index root `index` it maps."""
    return {"after": phase, "rss_mb": server_memory_mb(pid)[0], "own_rss_mb": own_memory_mb(pid),
            "files": mapped_files_mb(pid, under=os.path.realpath(index) + os.sep)}


def _status(pid: int) -> dict[str, str]:
    return dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)


def fixed_overhead_mb(work: Path) -> float:
    """Peak RSS of the server over a 300-movie index after a few calls of each kind: what it costs
    beyond its index (Python, gRPC, FAISS, numpy, scikit-learn), the "fixed overhead" of issue 9."""
    import grpc

    from movielinks.indexer.build import build_index
    from movielinks.proto import movielinks_pb2 as pb
    from movielinks.proto import movielinks_pb2_grpc as pb_grpc
    from tests.fixtures import make_run

    shutil.rmtree(work, ignore_errors=True)
    title = "Alien (film)"  # the fixture's other titles are generated; this one it takes as given
    build_index(make_run(work / "run", titles=[title]), work / "index", progress=False)
    process, address, _ = start_server(str(work / "index"))
    try:
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.MovielinksStub(channel)
            stub.LookupTitle(pb.LookupTitleRequest(title=title))
            for _ in range(20):
                stub.SimilarMovies(pb.SimilarMoviesRequest(title=title, k=10, reasons=3))
                stub.Recommend(pb.RecommendRequest(liked=[title], k=10))
                stub.LinkMovies(pb.LinkMoviesRequest(link=_link_of(stub, pb, title), k=10))
        return server_memory_mb(process.pid)[1]
    finally:
        process.terminate()
        process.wait(timeout=30)


def measure_service(index: str, *, seconds: float = 5.0, queries: int = 3000) -> dict[str, Any]:
    """Every measurement of the service-speed table (docs/speed.md), by name (milliseconds, seconds, per second, MB),
    taken in the table's order; and under "memory_by_phase" what the server held after each part of
    the single client's load (memory_after)."""
    import grpc

    from movielinks.indexer.root import load_current
    from movielinks.proto import movielinks_pb2 as pb
    from movielinks.proto import movielinks_pb2_grpc as pb_grpc

    version = load_current(index)
    titles = list(version.movie_names)
    rng = np.random.default_rng(0)
    found: dict[str, float] = in_process_search_ms(version, rng)
    movie_filter = similar_movies_filter(version, titles)
    del version  # the server process holds its own copy

    process, address, found["start_s"] = start_server(index)
    try:
        found["idle_rss_mb"] = server_memory_mb(process.pid)[0]
        phases = [memory_after(process.pid, "start", index)]
        with grpc.insecure_channel(address) as channel:
            found |= one_client(pb_grpc.MovielinksStub(channel), pb, titles, movie_filter, rng, queries,
                                lambda phase: phases.append(memory_after(process.pid, phase, index)))
        found["memory_by_phase"] = phases
        found |= similar_from_8_clients(address, titles, seconds)
        found["rss_mb"], found["peak_rss_mb"] = server_memory_mb(process.pid)
        found["own_rss_mb"] = own_memory_mb(process.pid)
        found["mapped_files"] = mapped_files_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return found | similar_from_processes(index, titles, seconds, os.cpu_count() or 1)


def similar_from_processes(index: str, titles: list[str], seconds: float, processes: int) -> dict[str, float]:
    """The 8-client rows again, from a server of `processes` processes (`server --processes`), and what its
    processes hold together after them (PSS)."""
    process, address, _ = start_server(index, processes)
    try:
        # Warmed up as the one-process server was by the single-client rows: every process past its
        # background import of scikit-learn, the pages the calls touch in memory.
        similar_from_8_clients(address, titles, seconds)
        found = {f"processes_{key}": value for key, value in similar_from_8_clients(address, titles, seconds).items()}
        found["processes_pss_mb"] = shared_memory_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return found | {"processes": processes}


def measure_with_floor(index: str, *, seconds: float = 5.0, queries: int = 3000) -> dict[str, float]:
    """measure_service, then the floor (the echo server, same client) and the service's ratios to it."""
    from movielinks.proto import movielinks_pb2 as pb

    found = measure_service(index, seconds=seconds, queries=queries)
    payload = pb.SimilarMoviesRequest(title="The Dark Knight (film)", k=10).SerializeToString()
    found.update(measure_echo(payload, seconds=seconds))
    found["similar_over_echo"] = found["similar_p50_ms"] / found["echo_p50_ms"]
    found["clients_over_echo"] = found["similar_8_clients_per_s"] / found["echo_8_clients_per_s"]
    found["processes_clients_over_echo"] = (found["processes_similar_8_clients_per_s"]
                                            / found["echo_processes_8_clients_per_s"])
    return found


def in_process_search_ms(version, rng: np.random.Generator) -> dict[str, float]:
    """One query's milliseconds in this process, on one thread: a FAISS search of the movie index,
    and the notebook's numpy argsort over every movie."""
    import faiss

    faiss.omp_set_num_threads(1)
    vectors = version.movie_vectors[np.sort(rng.integers(len(version.movie_names), size=300))]
    started = time.perf_counter()
    for q in vectors:
        version.movie_index.search(q[None, :], 11)
    faiss_search_ms = (time.perf_counter() - started) / len(vectors) * 1000
    started = time.perf_counter()
    for q in vectors[:50]:
        np.argsort(version.movie_vectors @ q)[-11:]
    return {"faiss_search_ms": faiss_search_ms, "numpy_argsort_ms": (time.perf_counter() - started) / 50 * 1000}


def latency_ms(call: Callable[[Any], object], args: Iterable[Any]) -> tuple[float, float]:
    """p50 and p99 milliseconds of `call(arg)` for each of `args` in turn (drawing the next arg is not timed)."""
    latencies = []
    for arg in args:
        t = time.perf_counter()
        call(arg)
        latencies.append(time.perf_counter() - t)
    return percentiles(latencies)


def one_client(stub, pb, titles: list[str], movie_filter, rng: np.random.Generator, queries: int,
               phase_done: Callable[[str], None] = lambda phase: None) -> dict[str, float]:
    """The rows of one gRPC client, a call at a time: each RPC's latency and the batch RPC's titles/s;
    `phase_done(what)` is called after each kind of call (not timed)."""
    found: dict[str, float] = {}
    # The server imports scikit-learn in the background once serving: the first svm Recommend waits for
    # it, and every later row is measured after it (the import holds the GIL for most of a second).
    t = time.perf_counter()
    stub.Recommend(pb.RecommendRequest(liked=titles[:3], k=10, strategy="svm"))
    found["first_recommend_ms"] = (time.perf_counter() - t) * 1000
    phase_done("the first svm Recommend")
    for title in titles[:200]:  # warm-up
        stub.SimilarMovies(pb.SimilarMoviesRequest(title=title, k=10))
    for name, request in (("similar", lambda t: pb.SimilarMoviesRequest(title=t, k=10)),
                          ("similar_filtered", lambda t: pb.SimilarMoviesRequest(title=t, k=10, filter=movie_filter)),
                          ("similar_reasons", lambda t: pb.SimilarMoviesRequest(title=t, k=10, reasons=3))):
        found[f"{name}_p50_ms"], found[f"{name}_p99_ms"] = latency_ms(
            lambda i: stub.SimilarMovies(request(titles[i])), rng.integers(len(titles), size=queries))
        phase_done(f"{queries:,} SimilarMovies{_SIMILAR_KIND[name]}")
    # Only the LinkMovies call is timed, not finding a link of the title to ask it for.
    links = (_link_of(stub, pb, titles[i]) for i in rng.integers(len(titles), size=min(queries, 1000)))
    found["link_movies_p50_ms"], found["link_movies_p99_ms"] = latency_ms(
        lambda link: stub.LinkMovies(pb.LinkMoviesRequest(link=link, k=10)), links)
    phase_done(f"MovieLinks (k=1, a link of a title) and LinkMovies, {min(queries, 1000):,} each")

    batch = [titles[i] for i in rng.integers(len(titles), size=5000)]
    t = time.perf_counter()
    for _ in range(4):
        stub.BatchSimilarMovies(pb.BatchSimilarMoviesRequest(titles=batch, k=10))
    found["batch_titles_per_s"] = 4 * len(batch) / (time.perf_counter() - t)
    phase_done("BatchSimilarMovies, 4 x 5,000 titles")

    # Issue 18's case: 20 liked and 20 disliked titles, by the default strategy and by the svm.
    for name, strategy in (("recommend_default", ""), ("recommend_svm", "svm")):
        picks = ([titles[i] for i in rng.choice(len(titles), 40, replace=False)] for _ in range(100))
        found[f"{name}_p50_ms"], found[f"{name}_p99_ms"] = latency_ms(
            lambda p: stub.Recommend(pb.RecommendRequest(liked=p[:20], disliked=p[20:], k=10, strategy=strategy)),
            picks)
        phase_done(f"100 Recommend, {strategy or 'default'}, 20 liked + 20 disliked")
    return found


_SIMILAR_KIND = {"similar": " (after 200 to warm up)", "similar_filtered": " with a filter",
                 "similar_reasons": " with 3 reasons"}


def similar_from_8_clients(address: str, titles: list[str], seconds: float) -> dict[str, float]:
    """The rows of 8 client processes calling SimilarMovies at once for `seconds`: queries/s, p50 and p99."""
    answers = concurrent_clients(client_loop, (address, titles), seconds)
    return {"similar_8_clients_per_s": sum(a[0] for a in answers) / seconds,
            "similar_8_clients_p50_ms": float(np.median([a[1] for a in answers])),
            "similar_8_clients_p99_ms": float(max(a[2] for a in answers))}


def similar_movies_filter(version, titles: list[str]):
    """The filter of the filtered SimilarMovies rows: years 1970-2010, the query's franchise and 20
    titles excluded, and where the version has the films' links, must link to "Science Fiction"
    (else the most linked link)."""
    from movielinks.proto import movielinks_pb2 as pb

    movie_filter = pb.MovieFilter(min_year=1970, max_year=2010, exclude_franchise=True, exclude_titles=titles[:20])
    if version.movie_links is not None:
        most_linked = version.links[int(np.bincount(version.movie_links.link_ids).argmax())]
        movie_filter.must_link_to.append("Science Fiction" if "Science Fiction" in version.links else most_linked)
    return movie_filter


def _link_of(stub, pb, title: str) -> str:
    """One link that characterises `title` (so that LinkMovies asks for links that exist)."""
    return stub.MovieLinks(pb.MovieLinksRequest(title=title, k=1)).neighbours[0].name


ROWS = [
    ("in-process FAISS search, one query (k=10)", "{faiss_search_ms:.3f} ms"),
    ("in-process numpy argsort (the notebook's way), one query", "{numpy_argsort_ms:.3f} ms"),
    ("server start to serving (process spawn to health SERVING)", "{start_s:.2f} s"),
    ("first Recommend (svm: it waits for the background import of scikit-learn), right after start",
     "{first_recommend_ms:.0f} ms"),
    ("SimilarMovies over gRPC, one client, p50 / p99", "{similar_p50_ms:.3f} / {similar_p99_ms:.3f} ms"),
    ("SimilarMovies with a filter (years 1970-2010, own franchise and 20 titles excluded, must link to "
     "Science Fiction), one client, p50 / p99", "{similar_filtered_p50_ms:.3f} / {similar_filtered_p99_ms:.3f} ms"),
    ("SimilarMovies with 3 reasons a neighbour, one client, p50 / p99",
     "{similar_reasons_p50_ms:.3f} / {similar_reasons_p99_ms:.3f} ms"),
    ("LinkMovies over gRPC (the link's stored list where the version has one, else an index search), one client, p50 / p99",
     "{link_movies_p50_ms:.3f} / {link_movies_p99_ms:.3f} ms"),
    ("BatchSimilarMovies, 5,000 titles a call, k=10", "{batch_titles_per_s:,.0f} titles/s"),
    ("Recommend, default (neighbours), 20 liked + 20 disliked, p50 / p99",
     "{recommend_default_p50_ms:.2f} / {recommend_default_p99_ms:.2f} ms"),
    ("Recommend, svm, 20 liked + 20 disliked, p50 / p99", "{recommend_svm_p50_ms:.2f} / {recommend_svm_p99_ms:.2f} ms"),
    ("SimilarMovies, 8 concurrent client processes", "{similar_8_clients_per_s:,.0f} queries/s"),
    ("SimilarMovies, 8 concurrent clients, p50 / p99",
     "{similar_8_clients_p50_ms:.3f} / {similar_8_clients_p99_ms:.3f} ms"),
    ("the floor: a bare Python gRPC echo server (bench/echo_server.py), one client, p50 / p99",
     "{echo_p50_ms:.3f} / {echo_p99_ms:.3f} ms"),
    ("the floor: echo, 8 concurrent client processes", "{echo_8_clients_per_s:,.0f} calls/s"),
    ("the echo with the pool the server had before (8 threads), 8 concurrent client processes",
     "{echo_threads8_8_clients_per_s:,.0f} calls/s"),
    ("SimilarMovies p50 over the echo's p50 (target <= 1.3)", "{similar_over_echo:.2f}x"),
    ("SimilarMovies with 8 clients over the echo's throughput", "{clients_over_echo:.2f}x"),
    ("SimilarMovies, 8 concurrent client processes, from `server --processes N` (N: the cores), p50 / p99",
     "N = {processes}: {processes_similar_8_clients_per_s:,.0f} queries/s, "
     "{processes_similar_8_clients_p50_ms:.3f} / {processes_similar_8_clients_p99_ms:.3f} ms"),
    ("the floor: echo with N processes (as `server --processes N`), 8 concurrent client processes",
     "{echo_processes_8_clients_per_s:,.0f} calls/s"),
    ("SimilarMovies with 8 clients over the echo's throughput, both with N processes",
     "{processes_clients_over_echo:.2f}x"),
    ("memory of the N processes after that load (PSS: pages they share counted once)", "{processes_pss_mb:,.0f} MB"),
    ("server memory: idle / after the load / peak", "{idle_rss_mb:,.0f} / {rss_mb:,.0f} / {peak_rss_mb:,.0f} MB"),
    ("server memory it holds itself after the load (RssAnon; the rest is pages of mapped files)",
     "{own_rss_mb:,.0f} MB"),
    ("resident pages of each mapped file after the load", "{mapped_files}"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True, help="index root (indexer build --out)")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of the concurrent-clients phase")
    parser.add_argument("--queries", type=int, default=3000, help="single-client queries")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    found = measure_with_floor(args.index, seconds=args.seconds, queries=args.queries)
    print(f"\nindex: {args.index}, cores: {os.cpu_count()}, load average before: {load_before:.2f}")
    print("| measurement | result |\n|---|---|")
    for name, value in ROWS:
        print(f"| {name} | {value.format(**found)} |")
    print("\n" + "\n".join(memory_rows(found["memory_by_phase"])))


def memory_rows(phases: list[dict[str, Any]]) -> list[str]:
    """memory_by_phase as a markdown table."""
    return ["| server memory after (MB) | RSS | its own (RssAnon) | resident pages of each file of the version it maps (1 MB or more) |",
            "|---|---|---|---|",
            *(f"| {p['after']} | {p['rss_mb']:,.0f} | {p['own_rss_mb']:,.0f} | {p['files']} |" for p in phases)]


if __name__ == "__main__":
    main()
