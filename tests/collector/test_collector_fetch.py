"""`collector fetch` against a local HTTP server laid out like the dump site (127.0.0.1 only)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from movielinks.collector.cli import main
from movielinks.collector.collect import collect
from movielinks.collector.fetch import dump_file_names, fetch_dump
from movielinks.collector.record import CollectorError
from tests.collector_fixtures import film_text, page, write_multistream
from tests.trainer.test_fetch import FileServer, server  # noqa: F401 - the fixture

WIKI, DATE = "enwiki", "20261101"
DUMP, INDEX, SUMS = dump_file_names(WIKI, DATE)


@pytest.fixture
def published(server: FileServer, tmp_path: Path) -> dict[str, bytes]:  # noqa: F811
    """A small multistream dump, its index and the sha1sums.txt that lists both, served by `server`."""
    pages = [page(f"Film {i}", film_text(f"Director {i}", "Shared link"), page_id=i + 1) for i in range(20)]
    (tmp_path / "source").mkdir()
    dump, index = write_multistream(tmp_path / "source" / DUMP, pages)
    files = {DUMP: dump.read_bytes(), INDEX: index.read_bytes()}
    files[SUMS] = "".join(f"{hashlib.sha1(data).hexdigest()}  {name}\n"
                          for name, data in {**files, "other-file.xml.bz2": b"x"}.items()).encode()
    for name, data in files.items():
        server.publish(WIKI, DATE, name, data)
    return files


def test_fetch_downloads_the_dump_and_index_verified_and_collect_reads_them(
        server: FileServer, published: dict[str, bytes], tmp_path: Path) -> None:  # noqa: F811
    dump, index = fetch_dump(WIKI, DATE, tmp_path / "cache", server.url, progress=False)
    assert dump == tmp_path / "cache" / "dumps" / WIKI / DATE / DUMP
    assert dump.read_bytes() == published[DUMP] and index.read_bytes() == published[INDEX]
    assert not list(dump.parent.glob("*.partial"))
    summary = collect(dump, tmp_path / "films.ndjson", workers=1)
    assert summary.films == 20
    requests = len(server.requests)
    fetch_dump(WIKI, DATE, tmp_path / "cache", server.url, progress=False)
    assert [path for path, _ in server.requests[requests:]] == [f"/{WIKI}/{DATE}/{SUMS}"]  # verified, kept


def test_a_cut_download_resumes_with_a_range_request(server: FileServer, published: dict[str, bytes],
                                                    tmp_path: Path) -> None:  # noqa: F811
    directory = tmp_path / "dumps" / WIKI / DATE
    directory.mkdir(parents=True)
    half = len(published[DUMP]) // 2
    (directory / f"{DUMP}.partial").write_bytes(published[DUMP][:half])
    dump, _index = fetch_dump(WIKI, DATE, tmp_path, server.url, progress=False)
    assert (f"/{WIKI}/{DATE}/{DUMP}", f"bytes={half}-") in server.requests
    assert dump.read_bytes() == published[DUMP]


def test_a_file_that_fails_its_published_sha1_is_deleted(server: FileServer, published: dict[str, bytes],
                                                        tmp_path: Path) -> None:  # noqa: F811
    server.corrupt[f"/{WIKI}/{DATE}/{INDEX}"] = b"not the index"
    with pytest.raises(CollectorError) as caught:
        fetch_dump(WIKI, DATE, tmp_path, server.url, progress=False)
    message = str(caught.value)
    assert INDEX in message and hashlib.sha1(published[INDEX]).hexdigest() in message
    assert f"collector fetch {WIKI} {DATE}" in message
    assert not (tmp_path / "dumps" / WIKI / DATE / INDEX).exists()
    assert not list((tmp_path / "dumps" / WIKI / DATE).glob("*.partial"))


def test_a_dump_not_listed_in_the_checksums_or_not_served_is_an_error(server: FileServer, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    server.publish(WIKI, "20261201", f"{WIKI}-20261201-sha1sums.txt", b"")
    with pytest.raises(CollectorError, match="lists no SHA-1"):
        fetch_dump(WIKI, "20261201", tmp_path, server.url, progress=False)
    assert main(["fetch", WIKI, "20270101", "--cache", str(tmp_path), "--base-url", server.url, "--quiet"]) == 1
    assert "HTTP 404" in capsys.readouterr().err
    with pytest.raises(CollectorError, match="not a dump date"):
        fetch_dump(WIKI, "Nov 2026", tmp_path, server.url)


def test_the_command_prints_both_paths(server: FileServer, published: dict[str, bytes], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert main(["fetch", WIKI, DATE, "--cache", str(tmp_path), "--base-url", server.url, "--quiet"]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "dumps" / WIKI / DATE / name) for name in (DUMP, INDEX)]
