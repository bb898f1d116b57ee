"""People's ratings as links (trainer.ratings): read in both formats, bad lines reported
and skipped, recorded in the run manifest, shaping the movie vectors, and never served."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from movielinks.common.files import sha256_file
from movielinks.client import ClientError, MovielinksClient
from movielinks.trainer.data import LinkTable
from movielinks.trainer.errors import TrainerError
from movielinks.trainer.ratings import TASTE_LINK_PREFIX, TasteLikes, read_ratings, with_taste_links
from movielinks.trainer.run import load_run
from movielinks.trainer.train import TrainConfig, train
from tests.conftest import clustered_films, write_ndjson
from tests.e2e_server import ServerProcess, build_index_cli

SMALL = TrainConfig(dim=16, epochs=6, batch_positives=128, min_link_count=2, learning_rate=0.05)
# Two groups of films from two different clusters (i % 6 is a film's cluster), liked together by 12 people.
TASTE_A = [f"Film {i} (film)" for i in range(0, 60, 6)]  # cluster 0
TASTE_B = [f"Film {i} (film)" for i in range(3, 63, 6)]  # cluster 3


def quiet(_: str) -> None:
    pass


def films_with_years() -> list[list]:
    records = clustered_films()
    for i, record in enumerate(records):
        record[1]["released"] = str(1950 + i)
    return records


def write_taste_csv(path, extra_lines: str = ""):
    lines = ["user,title,rating"]
    for user in range(12):
        lines += [f"u{user},{title},{4 + user % 2}" for title in TASTE_A + TASTE_B]
        lines.append(f"u{user},Film 100 (film),2")  # rated, not liked
    path.write_text("\n".join(lines) + "\n" + extra_lines, encoding="utf-8")
    return path


BAD_LINES = ('u1,"Film 7 (film)",not a number\n'
             "u1,No Such Film,5\n"
             "u2,Film 8 (film),7\n"
             "just one field\n"
             'u3,"Film 10 (film)",4.5\n'  # good, quoted
             "loner,Film 11 (film),5\n")  # good: one like, below the min link count


def titles_and_years(records):
    return [r[0] for r in records], np.array([int(r[1]["released"]) for r in records])


def test_csv_bad_lines_are_reported_and_skipped_and_nothing_else_is_lost(tmp_path):
    records = films_with_years()
    titles, years = titles_and_years(records)
    taste = read_ratings(write_taste_csv(tmp_path / "r.csv", BAD_LINES), titles, years)
    assert len(taste.skipped) == 4
    problems = [b.problem for b in taste.skipped]
    assert "is not a number" in problems[0] and "unknown title 'No Such Film'" in problems[1]
    assert "outside 0.5..5" in problems[2] and "expected 'user,title,rating'" in problems[3]
    assert [b.line for b in taste.skipped] == [254, 255, 256, 257]  # after a header and 12 people's 21 lines
    assert taste.ratings == 12 * 21 + 2
    film = {t: i for i, t in enumerate(titles)}
    assert sorted(taste.likes) == sorted([f"u{u}" for u in range(12)] + ["loner"])
    assert sorted(taste.likes["u0"].tolist()) == sorted(film[t] for t in TASTE_A + TASTE_B)
    assert film["Film 10 (film)"] in taste.likes["u3"].tolist()
    assert film["Film 100 (film)"] not in taste.likes["u0"].tolist()


def test_strict_stops_at_the_first_bad_line(tmp_path):
    titles, years = titles_and_years(films_with_years())
    with pytest.raises(TrainerError, match=r"r\.csv:254: rating 'not a number' is not a number.*--strict"):
        read_ratings(write_taste_csv(tmp_path / "r.csv", BAD_LINES), titles, years, strict=True)


def test_movielens_files_match_by_title_and_year(tmp_path):
    records = films_with_years()
    titles, years = titles_and_years(records)
    folder = tmp_path / "ml"
    folder.mkdir()
    # "Film 3 (1953)" is film 3; item 2's year is 40 years off, so it matches nothing
    (folder / "u.item").write_text("1|Film 3 (1953)|x|\n2|Film 4 (1990)|x|\n3|Film 5 (1955)|x|\n", encoding="latin-1")
    (folder / "u.data").write_text("7\t1\t5\t0\n7\t2\t5\t0\n7\t3\t3\t0\n8\t1\t9\t0\n8\t99\t4\t0\nbroken\n",
                                   encoding="latin-1")
    taste = read_ratings(folder, titles, years)
    assert taste.format == "movielens" and taste.ratings == 2
    assert {u: f.tolist() for u, f in taste.likes.items()} == {"7": [3]}
    problems = [str(b) for b in taste.skipped]
    assert len(problems) == 4
    assert "u.data:2: unknown title: item 2 ('Film 4 (1990)') matches no film" in problems[0]
    assert "outside" in problems[1] and "item 99 is not in u.item" in problems[2] and "expected" in problems[3]
    assert read_ratings(folder / "u.data", titles, years).likes.keys() == {"7"}


def test_taste_links_come_after_every_dataset_link():
    table = LinkTable(["a", "b", "c"], ["x", "y"], np.array([0, 2, 3, 3]), np.array([0, 1, 1], dtype=np.int32))
    taste = TasteLikes("f", "csv", "", 4.0, {"p": np.array([0, 2]), "q": np.array([2])}, 3, [])
    merged = with_taste_links(table, taste)
    assert merged.link_names == ["x", "y", TASTE_LINK_PREFIX + "p", TASTE_LINK_PREFIX + "q"]
    assert [merged.links_of(i) for i in range(3)] == [["x", "y", TASTE_LINK_PREFIX + "p"], ["y"],
                                                      [TASTE_LINK_PREFIX + "p", TASTE_LINK_PREFIX + "q"]]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The same small dataset trained without and with the ratings (one training each)."""
    tmp = tmp_path_factory.mktemp("taste")
    data = write_ndjson(tmp / "films.ndjson", films_with_years())
    ratings = write_taste_csv(tmp / "ratings.csv", BAD_LINES)
    plain = load_run(train(data, tmp / "plain", SMALL, progress=False, log=quiet))
    messages: list[str] = []
    tasted = load_run(train(data, tmp / "taste", SMALL, ratings=ratings, progress=False, log=messages.append))
    return tmp, ratings, plain, tasted, messages


def _mean_cross_cosine(run) -> float:
    index = {m.title: i for i, m in enumerate(run.movies)}
    a = run.movie_vectors[[index[t] for t in TASTE_A]]
    b = run.movie_vectors[[index[t] for t in TASTE_B]]
    return float((a @ b.T).mean())


@pytest.mark.tf
def test_films_liked_by_the_same_people_become_closer(trained):
    _, _, plain, tasted, _ = trained
    assert _mean_cross_cosine(tasted) > _mean_cross_cosine(plain) + 0.3
    assert tasted.manifest.metrics["link_auc"] > 0.8  # the dataset's links are still learnt


@pytest.mark.tf
def test_the_log_and_the_manifest_record_the_ratings_file(trained):
    _, ratings, plain, tasted, messages = trained
    assert f"skipped 4 bad rating lines, e.g. {ratings}:254: rating 'not a number' is not a number" in messages
    recorded = tasted.manifest.ratings
    assert recorded["path"] == str(ratings.resolve()) and recorded["sha256"] == sha256_file(ratings)
    assert recorded["format"] == "csv" and recorded["like_threshold"] == 4.0
    # the min link count (2 here) applies to a person's link as to any link: the loner's one like is not used
    assert recorded["users_with_likes"] == 13 and recorded["users_used"] == 12
    assert recorded["likes"] == 12 * 20 + 2 and recorded["likes_used"] == 12 * 20 + 1
    assert recorded["skipped_lines"] == 4 and "No Such Film" in recorded["skipped_examples"][1]
    assert plain.manifest.ratings == {}


@pytest.mark.tf
@pytest.mark.slow  # a real server process
def test_taste_links_are_never_in_the_run_or_served(trained):
    """Not in the run, so not in the index: no answer of the real server names one, and
    asking for one by name finds no such link."""
    tmp, _, plain, tasted, _ = trained
    assert tasted.links == plain.links and not any("liked by" in name for name in tasted.links)
    assert len(tasted.link_vectors) == len(tasted.links) == tasted.manifest.vocabulary["links"]
    assert int(tasted.movie_links.link_ids.max()) < len(tasted.links)
    build_index_cli(tasted.path, tmp / "index")
    server = ServerProcess(tmp / "index")
    with MovielinksClient(server.address) as client:
        served = [n.name for n in client.nearest_links(TASTE_A[0], k=1000).neighbours]
        served += [n.name for n in client.similar_links(tasted.links[0], k=1000).neighbours]
        served += [s.link for s in client.explain_similarity(TASTE_A[0], TASTE_B[0], k=1000).shared_links]
        recommended = client.recommend(TASTE_A[:3], k=10, reasons=5)
        served += [s.link for movie in recommended.best for s in movie.reasons]
        served += [s.link for n in client.similar_movies(TASTE_A[0], k=10, reasons=5).neighbours for s in n.reasons]
        served += client.search_names("liked", links=True, limit=100)[0]
        with pytest.raises(ClientError, match="unknown link"):
            client.link_movies(TASTE_LINK_PREFIX + "u0", k=5)
    assert server.stop() == 0
    assert len(set(served)) > 50 and not any("liked by" in name for name in served)


@pytest.mark.tf
def test_cli_trains_with_ratings_and_refuses_a_bad_threshold(trained, tmp_path):
    tmp, ratings, _, _, _ = trained
    bad = subprocess.run([sys.executable, "-m", "movielinks.trainer", "train", "--data", str(tmp / "films.ndjson"),
                          "--out", str(tmp_path / "run"), "--ratings", str(ratings), "--like-threshold", "6"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--like-threshold must be in [0.5, 5.0], got 6.0" in bad.stderr
    strict = subprocess.run([sys.executable, "-m", "movielinks.trainer", "train", "--data", str(tmp / "films.ndjson"),
                             "--out", str(tmp_path / "run"), "--ratings", str(ratings), "--strict"],
                            capture_output=True, text=True)
    assert strict.returncode == 2 and "is not a number" in strict.stderr and not (tmp_path / "run").exists()
    assert json.loads((tmp / "taste" / "manifest.json").read_text())["ratings"]["skipped_lines"] == 4
