"""Neighbour files: one row model in three formats, written atomically."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from movielinks.common.neighbour_files import COLUMNS, FORMATS, NeighbourWriter, read_neighbour_file

TRICKY_TITLES = ["Amélie", 'Say "Cheese", Please', "Line\nbreak", "Carriage\r\nreturn", "東京物語", "  spaced  "]


def neighbours_of(titles: list[str], k: int, rng: np.random.Generator) -> dict[str, list[tuple[str, float]]]:
    """Each title's k other titles with decreasing float32 scores."""
    result = {}
    for i, title in enumerate(titles):
        others = [t for j, t in enumerate(titles) if j != i][:k]
        scores = np.sort(rng.uniform(-1, 1, len(others)).astype(np.float32))[::-1]
        result[title] = [(t, float(s)) for t, s in zip(others, scores)]
    return result


@pytest.mark.parametrize("suffix", FORMATS)
def test_round_trip_over_several_writes(tmp_path: Path, suffix: str) -> None:
    titles = TRICKY_TITLES + [f"Movie {i}" for i in range(20)]
    expected = neighbours_of(titles, 4, np.random.default_rng(1))
    path = tmp_path / f"n{suffix}"
    with NeighbourWriter(path) as writer:
        for start in range(0, len(titles), 10):
            batch = titles[start : start + 10]
            writer.write(batch, [expected[t] for t in batch])

    assert writer.rows_written == 4 * len(titles)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    got = read_neighbour_file(path)
    assert list(got) == titles
    for title in titles:
        assert [n for n, _ in got[title]] == [n for n, _ in expected[title]]
        # Scores come back as the very float32 that was written.
        got_scores, expected_scores = [s for _, s in got[title]], [s for _, s in expected[title]]
        np.testing.assert_array_equal(np.float32(got_scores), np.float32(expected_scores))


def test_the_same_rows_in_every_format(tmp_path: Path) -> None:
    neighbours = [[("B", 0.5), ("C", 0.25)], [("A", 0.5)]]
    for suffix in FORMATS:
        with NeighbourWriter(tmp_path / f"n{suffix}") as writer:
            writer.write(["A", "B"], neighbours)
    expected_rows = [("A", 1, "B", 0.5), ("A", 2, "C", 0.25), ("B", 1, "A", 0.5)]

    with open(tmp_path / "n.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == COLUMNS
    assert [(m, int(r), n, float(s)) for m, r, n, s in rows[1:]] == expected_rows

    with open(tmp_path / "n.jsonl", encoding="utf-8") as f:
        objects = [json.loads(line) for line in f]
    assert [tuple(o[c] for c in COLUMNS) for o in objects] == expected_rows

    table = pq.read_table(tmp_path / "n.parquet")
    assert table.column_names == list(COLUMNS)
    assert [str(t) for t in table.schema.types] == ["string", "int32", "string", "float"]
    assert list(zip(*(table.column(c).to_pylist() for c in COLUMNS))) == expected_rows


def test_parquet_has_one_row_group_per_write(tmp_path: Path) -> None:
    path = tmp_path / "n.parquet"
    with NeighbourWriter(path) as writer:
        writer.write(["A"], [[("B", 0.1)]])
        writer.write(["C"], [[]])  # no rows: no empty row group
        writer.write(["B", "C"], [[("A", 0.1)], [("A", 0.2), ("B", 0.0)]])
    assert pq.ParquetFile(path).num_row_groups == 2
    got = read_neighbour_file(path)
    assert {movie: [n for n, _ in ranked] for movie, ranked in got.items()} == {"A": ["B"], "B": ["A"], "C": ["A", "B"]}


def test_unknown_suffix_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.csv, \.jsonl, \.parquet"):
        NeighbourWriter(tmp_path / "n.tsv")
    with pytest.raises(ValueError, match=r"\.csv, \.jsonl, \.parquet"):
        read_neighbour_file(tmp_path / "n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", FORMATS)
def test_an_error_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"n{suffix}"
    with NeighbourWriter(path) as writer:
        writer.write(["old"], [[("other", 1.0)]])
    before = path.read_bytes()

    with pytest.raises(RuntimeError, match="stream broke"):
        with NeighbourWriter(path) as writer:
            writer.write(["new"], [[("other", 0.5)]])
            assert path.read_bytes() == before  # nothing visible until the writer closes
            raise RuntimeError("stream broke")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        NeighbourWriter(tmp_path / "no-such-dir" / "n.csv")


def test_mismatched_lengths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one list per movie"):
        with NeighbourWriter(tmp_path / "n.jsonl") as writer:
            writer.write(["A", "B"], [[("C", 0.1)]])
    assert list(tmp_path.iterdir()) == []


# Any text that UTF-8 can encode (no lone surrogates).
titles_strategy = st.lists(
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12), min_size=2, max_size=6, unique=True
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(titles=titles_strategy, suffix=st.sampled_from(FORMATS), seed=st.integers(0, 2**32 - 1))
def test_any_titles_round_trip(tmp_path: Path, titles: list[str], suffix: str, seed: int) -> None:
    expected = neighbours_of(titles, 3, np.random.default_rng(seed))
    path = tmp_path / f"n{suffix}"
    with NeighbourWriter(path) as writer:
        writer.write(titles, [expected[t] for t in titles])
    got = read_neighbour_file(path)
    assert {t: [n for n, _ in ns] for t, ns in got.items()} == {t: [n for n, _ in ns] for t, ns in expected.items()}
    for title, ranked in got.items():
        assert np.float32([s for _, s in ranked]).tolist() == np.float32([s for _, s in expected[title]]).tolist()
