"""The client command's output and arguments, without a server."""
from __future__ import annotations

import pytest

from client.cli import _parser, render, table
from client.client import Neighbour, Neighbours, Prediction, Recommendation, ScoredMovie


def test_table_aligns_columns_and_right_aligns_numbers():
    text = table(("#", "name", "cosine"), [("1", "Alien (film)", "0.9000"), ("10", "Up", "-0.1000")])
    lines = text.splitlines()
    assert lines[0].startswith("#   name") and len({len(line) for line in lines}) == 1
    assert lines[2].endswith("-0.1000") and lines[1].endswith(" 0.9000")


def test_render_neighbours_prediction_and_recommendation():
    neighbours = Neighbours("Alien (film)", [Neighbour("Aliens (film)", 0.91234)], "v1")
    assert render(neighbours).splitlines() == ["Alien (film)   (index v1)", "#  name           cosine", "1  Aliens (film)  0.9123"]
    prediction = Prediction("Jaws (film)", "rotten_tomatoes", "fraction", 0.62, None, 0.066, 0.084, "v1")
    assert "known: unknown" in render(prediction) and "0.066 vs 0.084" in render(prediction)
    recommendation = Recommendation([ScoredMovie("Up", 1.5)], [ScoredMovie("Cats (2019 film)", -2.0)], "v1")
    assert "least liked" in render(recommendation) and "-2.0000" in render(recommendation)


def test_arguments():
    args = _parser().parse_args(["--server", "h:1", "--json", "recommend", "--like", "A", "--like", "B", "--dislike", "C", "--worst", "2"])
    assert (args.server, args.json, args.like, args.dislike, args.worst, args.k) == ("h:1", True, ["A", "B"], ["C"], 2, 10)
    with pytest.raises(SystemExit):
        _parser().parse_args(["query", "--movie", "A", "--link", "B"])  # one or the other
    with pytest.raises(SystemExit):
        _parser().parse_args(["recommend"])  # at least one --like
