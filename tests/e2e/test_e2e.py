"""End to end: a run -> `indexer build` -> the real server process -> the real client."""
from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from movielinks.client import ClientError, MovielinksClient
from movielinks.common.neighbour_files import read_neighbour_file
from movielinks.indexer.root import load_current
from tests.e2e_server import REPO, ServerProcess, build_index_cli, client_cli
from tests.fixtures import make_run, svm_decision
from movielinks.trainer.run import load_run

pytestmark = pytest.mark.slow  # real server (or indexer, collector) processes

TITLES = ["Interstellar (film)", "Star Wars (film)", "Star Wars: The Force Awakens", "The Martian (film)", "Alien (film)"]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    run = load_run(make_run(tmp / "run", titles=TITLES, n_movies=400, n_links=150))
    build_index_cli(run.path, tmp / "index", "--neighbours-k", "20")
    server = ServerProcess(tmp / "index")
    with MovielinksClient(server.address) as client:
        yield run, client, server, tmp
    assert server.stop() == 0, "".join(server.log_lines)


def titles_by_cosine(vectors, query_id, names):
    order = np.argsort(-(vectors @ vectors[query_id]), kind="stable")
    return [names[i] for i in order if i != query_id]


def test_similar_movies_equal_an_exact_cosine_ranking(service):
    run, client, _, _ = service
    titles = [m.title for m in run.movies]
    for k in (10, 50):  # 10 comes from the stored neighbours, 50 from a search
        result = client.similar_movies("Interstellar (film)", k=k)
        assert result.query == "Interstellar (film)" and len(result.neighbours) == k
        assert [n.name for n in result.neighbours] == titles_by_cosine(run.movie_vectors, 0, titles)[:k]
        scores = [n.score for n in result.neighbours]
        assert scores == sorted(scores, reverse=True)
        best = titles.index(result.neighbours[0].name)
        np.testing.assert_allclose(scores[0], float(run.movie_vectors[0] @ run.movie_vectors[best]), atol=1e-5)
    batch = client.similar_movies_batch(["Interstellar (film)", "alien (film)", "the martian"], k=10, facts=True)
    assert batch == [client.similar_movies(t, k=10) for t in ("Interstellar (film)", "Alien (film)", "The Martian (film)")]
    lean = client.similar_movies_batch(["Interstellar (film)", "alien (film)", "the martian"], k=10)
    assert [[(n.name, n.score) for n in r.neighbours] for r in lean] == [[(n.name, n.score) for n in r.neighbours]
                                                                         for r in batch]
    assert not any(n.url for r in lean for n in r.neighbours)  # facts only when asked: a batch stays small


def test_links_and_movies_for_links(service):
    run, client, _, _ = service
    similar = client.similar_links("Link 7", k=5)
    order = np.argsort(-(run.link_vectors @ run.link_vectors[7]))
    assert [n.name for n in similar.neighbours] == [run.links[i] for i in order if i != 7][:5]
    characteristic = client.nearest_links("Alien (film)", k=6)
    order = np.argsort(-(run.link_vectors @ run.movie_vectors[4]))
    assert [n.name for n in characteristic.neighbours] == [run.links[i] for i in order[:6]]
    movies = client.link_movies("Link 7", k=6)
    order = np.argsort(-(run.movie_vectors @ run.link_vectors[7]))
    assert [n.name for n in movies.neighbours] == [run.movies[i].title for i in order[:6]]


def test_recommend_order_equals_the_svm_decision_function(service):
    run, client, _, tmp = service
    liked, disliked = TITLES[:3], TITLES[3:]
    result = client.recommend(liked, disliked, k=25, worst_k=5, strategy="svm")
    decision = svm_decision(load_current(tmp / "index"), [0, 1, 2], [3, 4])  # TITLES are movies 0..4
    order = [i for i in np.argsort(-decision) if i >= 5]
    assert [m.title for m in result.best] == [run.movies[i].title for i in order[:25]]
    np.testing.assert_allclose([m.decision_value for m in result.best], decision[order[:25]], atol=1e-4)
    assert [m.title for m in result.worst] == [run.movies[i].title for i in order[::-1][:5]]
    assert not {m.title for m in result.best + result.worst} & set(TITLES)


def test_recommend_without_dislikes_uses_the_servers_seeded_negatives(service):
    run, client, _, tmp = service
    liked_ids = [0, 4]
    result = client.recommend([run.movies[i].title for i in liked_ids], k=10, strategy="svm")
    decision = svm_decision(load_current(tmp / "index"), liked_ids, [])
    order = [i for i in np.argsort(-decision) if i not in liked_ids]
    assert [m.title for m in result.best] == [run.movies[i].title for i in order[:10]]
    assert result == client.recommend([run.movies[i].title for i in liked_ids], k=10, strategy="svm")  # seeded


def test_predict_attribute(service):
    run, client, _, _ = service
    model = run.attribute_models["rotten_tomatoes"]
    for movie_id in (1, 3):  # movie 1 carries a known value, movie 3 does not (tests.fixtures)
        movie = run.movies[movie_id]
        prediction = client.predict_attribute(movie.title, "rotten_tomatoes")
        assert prediction.predicted == pytest.approx(float(model.predict(run.movie_vectors[movie_id])), rel=1e-5)
        assert prediction.known == movie.attributes.get("rotten_tomatoes")
        assert (prediction.heldout_mse, prediction.baseline_mse) == (model.heldout_mse, model.baseline_mse)
    gross = client.predict_attribute(run.movies[1].title, "gross")
    assert gross.unit == "USD" and gross.known is None
    assert gross.predicted == pytest.approx(float(run.attribute_models["gross"].predict(run.movie_vectors[1])), rel=1e-5)


def test_title_lookup_and_info(service):
    run, client, _, _ = service
    assert client.lookup_title("Interstellar (film)").match == "exact"
    assert client.lookup_title("interstellar (FILM)").match == "case_insensitive"
    assert client.lookup_title("interst").title == "Interstellar (film)"
    assert client.lookup_title("Inter-stellar (film)").title == "Interstellar (film)"
    with pytest.raises(ClientError, match="not in the catalogue under that name; did you mean: Interstellar"):
        client.lookup_title("Intersteller (film)")  # another spelling may be another film: asked, not answered
    info = client.info()
    assert (info.movies, info.links, info.dim) == (400, 150, 16)
    assert info.attributes == ["gross", "rotten_tomatoes"] and info.metrics == run.manifest.metrics
    assert info.max_k >= 100 and info.refused_versions == []


@pytest.mark.parametrize("call, code", [
    (lambda c: c.similar_movies("Alien (film)", k=-1), "INVALID_ARGUMENT"),
    (lambda c: c.similar_movies("Alien (film)", k=c.info().max_k + 1), "INVALID_ARGUMENT"),
    (lambda c: c.similar_movies("", k=5), "INVALID_ARGUMENT"),
    (lambda c: c.recommend([], ["Alien (film)"]), "INVALID_ARGUMENT"),
    (lambda c: c.recommend(["Alien (film)"], ["alien (film)"]), "INVALID_ARGUMENT"),
    (lambda c: c.similar_movies("A Completely Unknown Picture", k=5), "NOT_FOUND"),
    (lambda c: c.predict_attribute("Alien (film)", "box office"), "NOT_FOUND"),
    (lambda c: c.similar_links("No Such Link", k=5), "NOT_FOUND"),
])
def test_bad_requests_get_the_right_status(service, call, code):
    _, client, _, _ = service
    with pytest.raises(ClientError) as caught:
        call(client)
    assert caught.value.code == code
    assert client.similar_movies("Alien (film)", k=3).neighbours  # still serving


def test_unknown_title_names_close_titles(service):
    _, client, _, _ = service
    with pytest.raises(ClientError, match="did you mean: .*Star Wars") as caught:
        client.similar_movies("Star Wa", k=5)  # the prefix of two titles: not guessed
    assert caught.value.code == "NOT_FOUND"


def test_health_and_reflection(service):
    _, _, server, _ = service
    with grpc.insecure_channel(server.address) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="movielinks.v1.Movielinks"))
        assert check.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        services = {s.name for answer in answers for s in answer.list_services_response.service}
    assert {"movielinks.v1.Movielinks", "grpc.health.v1.Health"} <= services


def test_reflection_v1_describes_methods_as_grpcurl_asks(service):
    """grpcurl asks grpc.reflection.v1 first, for the file holding a method's symbol, then its imports."""
    from google.protobuf import descriptor_pb2

    _, _, server, _ = service
    with grpc.insecure_channel(server.address) as channel:
        v1 = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",  # same wire format
                                   request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                   response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        asked = [reflection_pb2.ServerReflectionRequest(file_containing_symbol="movielinks.v1.Movielinks.SimilarMovies"),
                 reflection_pb2.ServerReflectionRequest(file_by_filename="google/protobuf/struct.proto"),
                 reflection_pb2.ServerReflectionRequest(list_services="")]
        answers = list(v1(iter(asked), timeout=30))
    assert not any(a.HasField("error_response") for a in answers), answers
    files = [descriptor_pb2.FileDescriptorProto.FromString(blob)
             for a in answers[:2] for blob in a.file_descriptor_response.file_descriptor_proto]
    ours = next(f for f in files if f.package == "movielinks.v1")
    method = next(m for m in ours.service[0].method if m.name == "SimilarMovies")
    assert method.input_type == ".movielinks.v1.SimilarMoviesRequest"
    assert any(f.name == "google/protobuf/struct.proto" for f in files)
    assert "grpc.reflection.v1.ServerReflection" in {s.name for s in answers[2].list_services_response.service}


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_streaming_and_offline_exports_equal_single_queries(service, suffix):
    run, client, _, tmp = service
    streamed, offline = tmp / f"streamed{suffix}", tmp / f"offline{suffix}"
    assert client.export_to_file(streamed, k=5, progress=False) == 400 * 5
    subprocess.run([sys.executable, "-m", "movielinks.indexer", "export", str(tmp / "index"), "--k", "5", "--out", str(offline),
                    "--quiet"], cwd=REPO, check=True, capture_output=True)
    streamed_rows, offline_rows = read_neighbour_file(streamed), read_neighbour_file(offline)
    assert list(streamed_rows) == [m.title for m in run.movies]
    for title in ("Interstellar (film)", run.movies[123].title, run.movies[-1].title):
        single = [n.name for n in client.similar_movies(title, k=5).neighbours]
        assert [n for n, _ in streamed_rows[title]] == single == [n for n, _ in offline_rows[title]]
    assert {t: [n for n, _ in v] for t, v in streamed_rows.items()} == {t: [n for n, _ in v] for t, v in offline_rows.items()}


def test_an_export_stopped_early_leaves_the_server_serving(service):
    run, client, _, _ = service
    stream = client.export_neighbours(k=3, chunk_size=10)
    first = next(stream)
    stream.close()  # cancels the stream
    assert first.query == run.movies[0].title and len(first.neighbours) == 3
    again = client.similar_movies(run.movies[0].title, k=3)
    assert [(n.name, n.score) for n in again.neighbours] == [(n.name, n.score) for n in first.neighbours]


def test_client_command(service):
    _, _, server, _ = service
    table = client_cli("--server", server.address, "query", "--movie", "interstellar", "-k", "3")
    assert table.returncode == 0 and table.stdout.startswith("Interstellar (film)") and len(table.stdout.splitlines()) == 5
    as_json = json.loads(client_cli("--server", server.address, "--json", "query", "--movie", "Alien (film)").stdout)
    assert as_json["query"] == "Alien (film)" and len(as_json["neighbours"]) == 10
    unknown = client_cli("--server", server.address, "query", "--movie", "Star Wa")
    assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1 and "Star Wars" in unknown.stderr
    # past max_k: the server refuses it (a k below 1 the command refuses itself)
    invalid = client_cli("--server", server.address, "query", "--movie", "Alien (film)", "-k", "5000")
    assert invalid.returncode == 2 and invalid.stderr.startswith("client: error: k must be")
    assert invalid.stderr.count("\n") == 1


@pytest.mark.parametrize("args, call", [
    (["query", "--link", "Link 7", "-k", "4"], lambda c: c.similar_links("Link 7", 4)),
    (["links", "--movie", "Alien (film)", "-k", "4"], lambda c: c.nearest_links("Alien (film)", 4)),
    (["movies", "--link", "Link 7", "-k", "4"], lambda c: c.link_movies("Link 7", 4)),
    (["recommend", "--like", "Interstellar (film)", "--like", "Star Wars (film)", "--dislike", "Alien (film)",
      "-k", "4", "--worst", "2"],
     lambda c: c.recommend(["Interstellar (film)", "Star Wars (film)"], ["Alien (film)"], 4, 2)),
    (["predict", "--movie", "Alien (film)", "--attribute", "rotten_tomatoes"],
     lambda c: c.predict_attribute("Alien (film)", "rotten_tomatoes")),
    (["lookup", "interst"], lambda c: c.lookup_title("interst")),
    (["info"], lambda c: c.info()),
])
def test_every_client_command_prints_what_the_library_returns(service, args, call):
    _, client, server, _ = service
    as_json = client_cli("--json", *args, server=server.address)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == dataclasses.asdict(call(client))
    as_table = client_cli(*args, server=server.address)
    assert as_table.returncode == 0 and as_table.stdout.strip() and not as_table.stderr


def test_client_command_exports_a_file(service):
    run, client, server, tmp = service
    out = tmp / "by_command.jsonl"
    exported = client_cli("--json", "export", "--k", "4", "--out", str(out), server=server.address)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout) == {"out": str(out), "rows": 4 * len(run.movies)}
    rows = read_neighbour_file(out)
    assert [n for n, _ in rows["Alien (film)"]] == [n.name for n in client.similar_movies("Alien (film)", k=4).neighbours]
    wrong_suffix = client_cli("export", "--k", "4", "--out", str(tmp / "neighbours.txt"), server=server.address)
    assert wrong_suffix.returncode == 2 and wrong_suffix.stderr.count("\n") == 1 and ".parquet" in wrong_suffix.stderr
    assert not (tmp / "neighbours.txt").exists()


def test_client_command_finds_link_names_and_says_how(service):
    _, _, server, _ = service
    found = client_cli("links", "--search", "link 1", "-k", "3", "--server", server.address)
    assert found.returncode == 0, found.stderr
    assert found.stdout.splitlines() == ["61 link names contain 'link 1' (first 3 of 61)", "Link 1", "Link 10", "Link 11"]
    unknown = client_cli("query", "--link", "Qqqq Zzzz", "--server", server.address)
    assert unknown.returncode == 1 and "no similar link name" in unknown.stderr and "links --search" in unknown.stderr


def test_client_export_draws_no_progress_into_files_and_takes_k_and_quiet(service):
    run, _, server, tmp = service
    for extra in ([], ["--quiet"]):
        out = tmp / f"short{len(extra)}.csv"
        exported = client_cli("export", "-k", "2", "--out", str(out), *extra, server=server.address)
        assert exported.returncode == 0 and exported.stdout == f"wrote {2 * len(run.movies)} rows to {out}\n"
        assert exported.stderr == ""  # stderr is a pipe here: no tqdm frames in it


def test_a_client_waits_for_a_server_starting_when_asked_to(service):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    answers: list = []
    with MovielinksClient(f"127.0.0.1:{port}", timeout_s=30, wait_for_ready=True) as waiting:
        caller = threading.Thread(target=lambda: answers.append(waiting.similar_movies("Alien (film)", k=3)))
        caller.start()
        time.sleep(1.0)  # the call is under way before the server exists
        assert not answers
        server = ServerProcess(service[3] / "index", "--port", str(port))
        try:
            caller.join(30)
        finally:
            assert server.stop() == 0
    assert answers and answers[0].query == "Alien (film)" and len(answers[0].neighbours) == 3


def test_a_grpc_port_in_use_is_one_line(service):
    _, _, server, tmp = service
    taken = int(server.address.rsplit(":", 1)[1])
    refused = subprocess.run([sys.executable, "-m", "movielinks.server", "--index", str(tmp / "index"), "--port", str(taken)],
                             cwd=REPO, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [f"server: error: cannot listen on 127.0.0.1:{taken}: Address already in use"]


def test_client_command_when_the_server_is_down():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: nobody answers there
        down = client_cli("--server", f"127.0.0.1:{port}", "--timeout", "5", "info")
    assert down.returncode == 1 and down.stderr.count("\n") == 1 and "cannot reach the movielinks server" in down.stderr


@pytest.mark.parametrize("command", ["trainer", "indexer", "server", "client"])
def test_console_commands_start_from_any_directory(command, tmp_path):
    """The installed commands, not `python -m` from the checkout (which puts it on sys.path)."""
    script = Path(sys.executable).parent / command
    assert script.exists(), f"{script} is not installed: pip install -e . first"
    shown = subprocess.run([str(script), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and shown.stdout.startswith(f"usage: {command}"), shown.stderr
