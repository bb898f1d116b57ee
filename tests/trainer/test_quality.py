"""The neighbour measures of the evaluation: franchises (common.franchises, the server's rule too) and genres
from records, the TF-IDF reference."""
from __future__ import annotations

import numpy as np

from movielinks.trainer import evaluate
from movielinks.common.franchises import film_identity, franchise_groups, franchise_key
from movielinks.trainer.groups import dataset_genres, film_genres


def test_franchise_keys_follow_the_title_rule():
    assert franchise_key("Toy Story") == ("toy story", False)
    assert franchise_key("Toy Story 3") == ("toy story", True)
    assert franchise_key("Star Wars: The Force Awakens") == ("star wars", True)
    assert franchise_key("Star Wars (film)") == ("star wars", False)
    assert franchise_key("Rocky II") == ("rocky", True)
    assert franchise_key("Apollo 13 (film)") == ("apollo 13", False)  # numbers past 12 stay in the key
    assert franchise_key("The Godfather Part II") == ("the godfather", True)
    assert franchise_key("Alien (film)")[0] != franchise_key("Aliens (film)")[0]


def test_franchises_need_a_sequel_or_subtitle():
    titles = ["Toy Story", "Alone (1931 film)", "Toy Story 2", "Alone (2020 film)", "Toy Story 3", "Up (2009 film)"]
    groups = franchise_groups(titles)
    assert [g.tolist() for g in groups] == [[0, 2, 4]]  # two unrelated "Alone" films are no franchise


def test_remakes_and_one_film_under_two_titles_are_no_franchise():
    titles = ["Henry V (1944 film)", "Henry V (1989 film)", "Il Postino", "Il Postino: The Postman",
              "The Lord of the Rings: The Two Towers", "The Lord of the Rings: The Return of the King",
              "Halloween (1978 film)", "Halloween II (1981 film)", "Halloween II (2009 film)"]
    postino = {"name": "Il Postino: The Postman", "released": "1994"}
    infoboxes = [{"name": "Henry V", "released": "1944"}, {"name": "Henry V", "released": "1989"}, postino, postino,
                 {"name": "The Lord of the Rings", "released": "2002"},
                 {"name": "The Lord of the Rings", "released": "2003"}, {}, {}, {}]
    # a king's number is no sequel's (one title twice); one name and year is one film; a series may share its name
    assert [g.tolist() for g in franchise_groups(titles, [film_identity(i) for i in infoboxes])] == [[4, 5], [6, 7, 8]]
    assert [g.tolist() for g in franchise_groups(titles)] == [[2, 3], [4, 5], [6, 7, 8]]  # titles alone


def test_genres_are_the_links_after_the_cast():
    infobox = {"starring": "Tom Hanks, Tim Allen", "director": "John Lasseter"}
    assert film_genres(infobox, ["Tom Hanks", "Tim Allen", "Animated", "Comedy", "John Lasseter"]) == ["Animated", "Comedy"]
    assert film_genres(infobox, ["Pixar", "Tom Hanks", "Tim Allen"]) is None
    assert film_genres({}, ["Drama"]) == ["Drama"]
    # a file whose links do not start with the cast (every article link) has no genres
    assert dataset_genres([infobox] * 3, [["Pixar", "Tom Hanks"]] * 3) is None
    assert dataset_genres([infobox, {}], [["Tom Hanks", "Tim Allen", "Comedy"], ["Drama"]]) == [
        frozenset({"Comedy"}), frozenset({"Drama"})]

    def unread():  # a million films' links read back from the file: not when no film has a cast
        raise AssertionError("links read")
        yield

    assert dataset_genres([{}, {"director": "John Lasseter"}], unread()) is None


def test_tfidf_reference_and_neighbour_measures_on_planted_groups(monkeypatch):
    # 60 movies in 6 groups; each group shares its own 4 links, and every movie links to one common link.
    pairs = np.array([(m, 1 + (m % 6) * 4 + j) for m in range(60) for j in range(4)] + [(m, 0) for m in range(60)])
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))].astype(np.int32)
    rows = evaluate.tfidf_rows(pairs, 60, 25)
    assert np.allclose(np.asarray(rows.multiply(rows).sum(axis=1)).ravel(), 1, atol=1e-5)
    top = evaluate.top_neighbours(lambda ids: (rows[ids] @ rows.T).toarray(), np.arange(60), 60, 5)
    assert top.shape == (60, 5) and not (top == np.arange(60)[:, None]).any()
    assert ((top % 6) == (np.arange(60) % 6)[:, None]).all()

    group_vectors = np.eye(6, dtype=np.float32)[np.arange(60) % 6]
    franchises = [np.arange(g, 60, 6) for g in range(6)]
    genres = [frozenset({f"genre {m % 3}"}) for m in range(60)]
    quality = evaluate.neighbour_quality(group_vectors, pairs, 25, franchises, genres, seed=0)
    for method in ("learned", "tfidf"):
        assert quality[method]["franchise_hit_at_10"] == 1.0
        assert quality[method]["genre_agreement_at_10"] >= 0.9  # 9 of 10 neighbours are of its group
        assert quality[method]["recommendation_recall_at_10"] == 1.0
    random_vectors = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    assert evaluate.neighbour_quality(random_vectors, pairs, 25, franchises, genres, 0)["learned"]["franchise_hit_at_10"] < 1

    # beyond the cell budget the queries are a sample, and the measure still comes out
    monkeypatch.setattr(evaluate, "QUALITY_MAX_CELLS", 600)
    sampled = evaluate.neighbour_quality(group_vectors, pairs, 25, franchises, genres, seed=0)
    assert sampled["franchise_films"] == 10 and sampled["learned"]["franchise_hit_at_10"] == 1.0


def test_a_measure_without_queries_is_none_not_nan():
    # no franchise, no genres: the metrics must stay valid JSON (the server puts them in a protobuf Struct)
    pairs = np.array([(m, m % 3) for m in range(12)], dtype=np.int32)
    vectors = np.eye(3, dtype=np.float32)[np.arange(12) % 3]
    quality = evaluate.neighbour_quality(vectors, pairs, 3, [], None, seed=0)
    assert quality["learned"] == {"franchise_hit_at_10": None, "genre_agreement_at_10": None,
                                  "recommendation_recall_at_10": None}
    assert "-" in evaluate.format_table({"link_auc": 0.9, "recall_at_10": 0.5, "heldout_pairs": 1,
                                         "neighbours": quality}, {})
