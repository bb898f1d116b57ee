"""The client library and command without a server: output, arguments, errors, exit codes."""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import types

import grpc
import pytest

import movielinks.client.cli

from movielinks import client
from movielinks.client.cli import Exported, NameList, _parser, amount, main, render, table
from movielinks.client.client import (ClientError, Info, MovielinksClient, Neighbour, Neighbours, Prediction, Recommendation,
                           ScoredMovie, TitleMatch, server_address)

NOBODY = "127.0.0.1:1"  # calls that fail before reaching the network never contact it


def test_table_aligns_columns_and_right_aligns_numbers():
    text = table(("#", "name", "cosine"), [("1", "Alien (film)", "0.9000"), ("10", "Up", "-0.1000")])
    lines = text.splitlines()
    assert lines[0].startswith("#   name") and len({len(line) for line in lines}) == 1
    assert lines[2].endswith("-0.1000") and lines[1].endswith(" 0.9000")


def test_render_neighbours_prediction_and_recommendation():
    neighbours = Neighbours("Alien (film)", [Neighbour("Aliens (film)", 0.91234)], "v1")
    assert render(neighbours).splitlines() == [
        "Alien (film)   (index v1)", "#  name           cosine", "1  Aliens (film)  0.9123"]
    prediction = Prediction("Jaws (film)", "rotten_tomatoes", "fraction", 0.62, None, 0.0625, 0.09, "v1")
    assert render(prediction).splitlines() == [
        "Jaws (film): rotten_tomatoes predicted 62% (known: unknown)",
        "typical error (held-out RMSE) 25 percentage points, against 30 percentage points for always predicting the mean"]
    gross = Prediction("Deadpool (film)", "gross", "USD", 1.145e8, 7.831e8, 1.842e16, 2.5e16, "v1")
    assert render(gross).splitlines() == [
        "Deadpool (film): gross predicted $114.5 million (known: $783.1 million)",
        "typical error (held-out RMSE) $135.7 million, against $158.1 million for always predicting the mean"]
    recommendation = Recommendation([ScoredMovie("Up", 1.5)], [ScoredMovie("Cats (2019 film)", -2.0)], "v1")
    assert "least liked" in render(recommendation) and "-2.0000" in render(recommendation)
    assert "least liked" not in render(Recommendation([ScoredMovie("Up", 1.5)], [], "v1"))


def test_render_info_lookup_and_export():
    info = Info("v1", 400, 150, 16, "IndexFlat", "IndexFlat", {"sha256": "ab"}, {"link_auc": 0.9, "history": [1, 2]},
                ["gross", "rotten_tomatoes"], 1000, 10000, 500, [])
    lines = render(info).splitlines()
    assert "attributes: gross, rotten_tomatoes" in lines and "refused_versions: none" in lines
    assert 'metrics: {"link_auc": 0.9}' in lines  # per-epoch lists are left to --json
    assert render(TitleMatch("Interstellar (film)", "prefix")) == "Interstellar (film)   (prefix match)"
    assert render(Exported("n.csv", 4000)) == "wrote 4000 rows to n.csv"


@pytest.mark.parametrize("value, unit, text", [
    (1.2e9, "USD", "$1.2 billion"), (114_500_000, "USD", "$114.5 million"), (950_000, "USD", "$950,000"),
    (-2.5e6, "USD", "-$2.5 million"), (0.87, "fraction", "87%"), (3.5, "kg", "3.5 kg"),
])
def test_amounts_read_as_people_write_them(value, unit, text):
    assert amount(value, unit) == text


def test_name_search_renders_a_count_and_the_names():
    found = NameList("fic", "link", ["Science fiction", "Fiction"], 7)
    assert render(found).splitlines() == ["7 link names contain 'fic' (first 2 of 7)", "Science fiction", "Fiction"]
    assert render(NameList("spiel", "link", ["Steven Spielberg"], 1)).splitlines()[0] == "1 link name contains 'spiel'"


@pytest.mark.parametrize("typed, target", [
    ("localhost", "localhost:50051"), ("localhost:7000", "localhost:7000"), ("10.0.0.5", "10.0.0.5:50051"),
    ("::1", "[::1]:50051"), ("[::1]:9000", "[::1]:9000"), ("movielinks.internal", "movielinks.internal:50051"),
    ("unix:/run/movielinks.sock", "unix:/run/movielinks.sock"),
])
def test_a_missing_port_means_50051(typed, target):
    assert server_address(typed) == target


@pytest.mark.parametrize("typed", ["localhost:", "host:0", "host:99999", "host:http", "two words", "[::1", "a:b:c:d:zz",
                                   ""])
def test_a_malformed_server_address_is_a_usage_error(typed, capsys):
    with pytest.raises(ClientError) as caught:
        server_address(typed)
    assert caught.value.code == "INVALID_ARGUMENT" and "malformed" in caught.value.message
    assert main(["--server", typed or " ", "info"]) == 2
    assert "malformed" in capsys.readouterr().err


def test_global_options_go_before_or_after_the_command():
    before = _parser().parse_args(["--server", "h:1", "--json", "--timeout", "5", "query", "--movie", "X"])
    after = _parser().parse_args(["query", "--movie", "X", "--json", "--server", "h:1", "--timeout", "5"])
    assert (before.server, before.json, before.timeout) == (after.server, after.json, after.timeout) == ("h:1", True, 5)
    neither = _parser().parse_args(["info"])
    assert (neither.server, neither.json, neither.timeout, neither.wait_for_ready) == (None, False, 30.0, False)
    export = _parser().parse_args(["export", "-k", "5", "--out", "n.csv", "--quiet"])
    assert (export.k, export.quiet) == (5, True)
    assert _parser().parse_args(["links", "--search", "fic"]).search == "fic"


def test_no_command_prints_the_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: client") and "recommend" in out and "Exit codes" in out


@pytest.mark.parametrize("command", ["query", "why", "links", "movies", "recommend", "vectors", "predict", "export", "info",
                                     "lookup"])
def test_every_command_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0 and f"examples:\n  client {command}" in out
    assert "connection and output (also accepted before the command):\n  --server" in out
    subparsers = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    unexplained = [a.dest for a in subparsers.choices[command]._actions if not a.help]
    assert not unexplained


@pytest.mark.slow
@pytest.mark.parametrize("module", ["client", "server", "indexer", "trainer", "collector"])
def test_every_command_says_its_version(module, tmp_path):
    # cwd outside the checkout: `-m client` there would run the folder, not the installed movielinks.client
    shown = subprocess.run([sys.executable, "-m", f"movielinks.{module}", "--version"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and re.fullmatch(rf"{module} \d+\.\d+\.\d+\S*\n", shown.stdout), shown


def test_arguments():
    argv = ["--server", "h:1", "--json", "recommend", "--like", "A", "--like", "B", "--dislike", "C", "--worst", "2"]
    args = _parser().parse_args(argv)
    assert (args.server, args.json, args.like, args.dislike, args.worst, args.k) == ("h:1", True, ["A", "B"], ["C"], 2, 10)
    assert _parser().parse_args(["query", "--link", "George Lucas"]).timeout > 0


def test_films_given_by_links_are_one_option_each():
    args = _parser().parse_args(["recommend", "--like-film", "Christopher Nolan", "Hans Zimmer", "--like-film",
                                 "Ridley Scott", "--dislike-film", "Adam Sandler", "--like", "Alien (film)"])
    assert args.like_film == [["Christopher Nolan", "Hans Zimmer"], ["Ridley Scott"]]
    assert args.dislike_film == [["Adam Sandler"]] and args.like == ["Alien (film)"]
    args = _parser().parse_args(["vectors", "Alien (film)", "Up", "--links", "L1", "L2", "--film", "A", "B", "--film", "C"])
    assert (args.titles, args.links, args.film) == (["Alien (film)", "Up"], ["L1", "L2"], [["A", "B"], ["C"]])
    args = _parser().parse_args(["why", "Inception", "--links-b", "Christopher Nolan", "Hans Zimmer"])
    assert (args.title_a, args.title_b, args.links_b) == ("Inception", None, ["Christopher Nolan", "Hans Zimmer"])


@pytest.mark.parametrize("argv, complaint", [
    (["query", "--movie", "A", "--link", "B"], "not allowed with argument"),  # one or the other
    (["recommend"], "--like"),  # at least one liked title
    (["--timeout", "0", "info"], "positive, finite number of seconds"),
    (["--timeout", "nan", "info"], "positive, finite number of seconds"),
    (["query", "--movie", "A", "-k", "ten"], "'ten' is not a whole number"),
    (["links", "--search", "fic", "-k", "0"], "0 is not 1 or more"),
    (["links", "--movie", "A", "--search", "fic"], "not allowed with argument"),
    (["recommend", "--dislike-film", "L"], "--like-film LINK"),  # a disliked film alone: nothing liked
    (["recommend", "--like-film"], "expected at least one argument"),
    (["why", "A"], "B as a title or as --links-b"),
    (["why", "A", "B", "--links-b", "L"], "B as a title or as --links-b"),
    (["why", "A", "--links-b"], "expected at least one argument"),
    (["vectors"], "at least one TITLE, --links LINK or --film"),
    (["vectors", "A", "--out", "v.csv"], "one of .npy, .json"),
    (["query", "--vector", "/nowhere/v.npy"], "argument --vector: /nowhere/v.npy: No such file or directory"),
    (["query", "--vector", "v.csv"], "a vector file is .npy (one vector) or .json"),
    (["recommend", "--like-vector", "/nowhere/v.json"], "argument --like-vector: /nowhere/v.json: No such file"),
])
def test_bad_usage_is_one_line_and_exit_code_2(argv, complaint, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    stderr = capsys.readouterr().err
    assert exited.value.code == 2
    assert stderr.startswith("client: error: ") and stderr.count("\n") == 1 and complaint in stderr


class FakeClient:
    """Stands in for MovielinksClient in `main`: answers every verb with `answer`, or raises it."""

    def __init__(self, answer):
        self.answer = answer

    def __call__(self, target, **options):
        self.target = target
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def __getattr__(self, verb):
        def call(*args, **options):
            if isinstance(self.answer, BaseException):
                raise self.answer
            return self.answer
        return call


@pytest.mark.parametrize("error, exit_code", [
    (ClientError("NOT_FOUND", "unknown movie 'Star Wa'; did you mean: Star Wars (film)"), 1),
    (ClientError("UNAVAILABLE", "cannot reach the movielinks server at h:1"), 1),
    (ClientError("INVALID_ARGUMENT", "k must be 1..1000, got 0\n(see GetInfo)"), 2),
    (FileNotFoundError(2, "No such file or directory", "/nowhere/n.csv"), 1),
])
def test_errors_are_one_line_on_stderr_with_the_documented_exit_code(monkeypatch, capsys, error, exit_code):
    monkeypatch.setattr(client.cli, "MovielinksClient", FakeClient(error))
    assert main(["query", "--movie", "Star Wa"]) == exit_code
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("client: error: ") and err.count("\n") == 1
    assert (error.message.split("\n")[0] if isinstance(error, ClientError) else "/nowhere/n.csv") in err


def test_results_go_to_stdout_as_a_table_or_json(monkeypatch, capsys):
    neighbours = Neighbours("Alien (film)", [Neighbour("Aliens (film)", 0.5), Neighbour("Prometheus (film)", 0.25)], "v1")
    monkeypatch.setattr(client.cli, "MovielinksClient", FakeClient(neighbours))
    assert main(["query", "--movie", "alien"]) == 0
    assert capsys.readouterr().out == render(neighbours) + "\n"
    assert main(["--json", "query", "--movie", "alien"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "query": "Alien (film)", "index_version": "v1",
        "neighbours": [{"name": name, "score": score, "year": None, "director": "", "url": "", "reasons": [],
                        "imdb_id": "", "wikidata_id": ""}
                       for name, score in (("Aliens (film)", 0.5), ("Prometheus (film)", 0.25))],
        "query_year": None, "query_director": "", "query_url": "", "reasons_basis": "", "query_links": [],
        "unknown_links": [], "query_imdb_id": "", "query_wikidata_id": "",
    }


def test_the_server_comes_from_the_option_then_the_environment(monkeypatch):
    monkeypatch.setenv("MOVIELINKS_SERVER", "from-env:5")
    with MovielinksClient() as from_env, MovielinksClient("from-option:6") as from_option:
        assert (from_env.target, from_option.target) == ("from-env:5", "from-option:6")
    monkeypatch.delenv("MOVIELINKS_SERVER")
    with MovielinksClient() as default:
        assert default.target == "127.0.0.1:50051"


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


@pytest.mark.parametrize("status, details, says", [
    (grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses",
     "cannot reach the movielinks server at 127.0.0.1:1 (failed to connect to all addresses): is it running? "
     "set --server or MOVIELINKS_SERVER"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", "no answer from 127.0.0.1:1 within 2.5 s; raise --timeout"),
    (grpc.StatusCode.NOT_FOUND, "unknown movie 'Alein'; did you mean: Alien (film)",
     "unknown movie 'Alein'; did you mean: Alien (film)"),
])
def test_grpc_errors_become_client_errors_a_user_can_act_on(status, details, says):
    with MovielinksClient(NOBODY, timeout_s=2.5) as movielinks:
        def fail(request, timeout, metadata, **options):
            raise FakeRpcError(status, details)
        movielinks._stub = types.SimpleNamespace(SimilarMovies=fail)
        with pytest.raises(ClientError) as caught:
            movielinks.similar_movies("Alein")
    assert caught.value.code == status.name and caught.value.message.startswith(says)


def test_requests_protobuf_cannot_carry_are_refused_before_any_call(tmp_path):
    with MovielinksClient(NOBODY) as movielinks:
        with pytest.raises(ClientError, match=r"k=1099511627776 is out of range") as too_big:
            movielinks.similar_movies("Alien (film)", k=2**40)
        with pytest.raises(ClientError, match="not valid UTF-8") as undecodable:
            movielinks.lookup_title("Alien \udcff")  # what argv holds for bytes that are not UTF-8
        with pytest.raises(ClientError, match=r"\.csv, \.jsonl, \.parquet") as suffix:
            movielinks.export_to_file(tmp_path / "neighbours.txt", progress=False)
        with pytest.raises(TypeError, match="list of titles"):
            movielinks.recommend("Alien (film)")  # one title per character, otherwise
    assert {too_big.value.code, undecodable.value.code, suffix.value.code} == {"INVALID_ARGUMENT"}
    assert list(tmp_path.iterdir()) == []


def test_the_client_imports_no_tensorflow_and_no_other_stage(tmp_path):
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, movielinks.client.cli; print(' '.join(sys.modules))"],
        cwd=tmp_path, capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()
    assert "movielinks.client.client" in loaded
    heavy = {"tensorflow", "keras", "faiss", "sklearn", "numpy"}
    stages = {"movielinks.trainer", "movielinks.indexer", "movielinks.server", "movielinks.collector"}
    assert not {m.split(".")[0] for m in loaded} & heavy
    assert not {".".join(m.split(".")[:2]) for m in loaded} & stages


def test_calls_that_find_no_server_are_retried_by_grpcs_policy():
    """A stand-in servicer answers UNAVAILABLE twice (a server restarting), then answers; NOT_FOUND is not retried."""
    import concurrent.futures

    from movielinks.proto import movielinks_pb2 as pb
    from movielinks.proto import movielinks_pb2_grpc as pb_grpc

    attempts = {"SimilarMovies": 0, "LookupTitle": 0}

    class Flaky(pb_grpc.MovielinksServicer):
        def SimilarMovies(self, request, context):
            attempts["SimilarMovies"] += 1
            if attempts["SimilarMovies"] <= 2:
                context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
            return pb.NeighboursResponse(query=request.title, index_version="v1")

        def LookupTitle(self, request, context):
            attempts["LookupTitle"] += 1
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown movie")

    stand_in = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_MovielinksServicer_to_server(Flaky(), stand_in)
    port = stand_in.add_insecure_port("127.0.0.1:0")
    stand_in.start()
    try:
        with MovielinksClient(f"127.0.0.1:{port}", timeout_s=10) as movielinks:
            assert movielinks.similar_movies("Alien (film)").query == "Alien (film)"
            with pytest.raises(ClientError) as caught:
                movielinks.lookup_title("Nothing")
    finally:
        stand_in.stop(None)
    assert attempts == {"SimilarMovies": 3, "LookupTitle": 1} and caught.value.code == "NOT_FOUND"


def test_a_liked_vector_counts_as_liked_and_a_vector_cannot_give_reasons(tmp_path, capsys):
    vector = tmp_path / "v.json"
    vector.write_text("[0.5, -0.25, 1]")
    assert _parser().parse_args(["recommend", "--like-vector", str(vector)]).like_vector[0].values == [0.5, -0.25, 1.0]
    with pytest.raises(SystemExit) as exited:
        main(["recommend", "--dislike-vector", str(vector)])  # a disliked vector alone: nothing liked
    assert exited.value.code == 2 and "--like-vector FILE" in capsys.readouterr().err
    assert main(["--server", NOBODY, "query", "--vector", str(vector), "--reasons", "2"]) == 2
    assert "--vector has no links" in capsys.readouterr().err


def test_vectors_out_replaces_the_files_whole_or_leaves_them_as_they_were(tmp_path, monkeypatch):
    np = pytest.importorskip("numpy")
    from movielinks.client.cli import write_vectors
    from movielinks.client.client import NamedVectors, Vectors

    none = NamedVectors([], np.zeros((0, 3), np.float32), [])
    found = Vectors(NamedVectors(["Alien (film)"], np.ones((1, 3), np.float32), [[]]), none, none, "v1", 3)
    for name in ("v.npy", "w.json"):
        (tmp_path / name).write_bytes(b"old")

    def fails_halfway(f, rows):
        f.write(b"\x93NUMPY half")
        raise OSError(28, "No space left on device")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", fails_halfway)  # .npy: half the array written, then the error
    with pytest.raises(OSError, match="No space left"):
        write_vectors(found, str(tmp_path / "v.npy"))
    monkeypatch.setattr(os, "fsync", disk_full)  # .json: all of it written, but it never reaches the disk
    with pytest.raises(OSError, match="No space left"):
        write_vectors(found, str(tmp_path / "w.json"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.npy", "w.json"]  # no temporary file left beside them
    assert (tmp_path / "v.npy").read_bytes() == b"old" and (tmp_path / "w.json").read_bytes() == b"old"
    monkeypatch.undo()
    assert write_vectors(found, str(tmp_path / "v.npy")).rows == 1
    assert np.load(tmp_path / "v.npy").tolist() == [[1.0, 1.0, 1.0]]
    assert json.loads((tmp_path / "v.json").read_text())["names"] == ["Alien (film)"]
