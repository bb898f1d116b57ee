"""The collector on saved article HTML: rendered pages, Parsoid HTML, bad pages, the shared tarball."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from movielinks.collector.collect import collect
from movielinks.collector.htmlpages import NO_CONTENT, NO_FILM_INFOBOX, HtmlBatch, collect_batch
from movielinks.collector.record import CollectorError
from movielinks.common.film_record import LINK_KINDS

SHARED_TARBALL = Path(__file__).resolve().parents[3] / "shared" / "data" / "oscar-movies-html.tar.gz"

RENDERED = """<!DOCTYPE html><html><head><title>Alien (film) - Wikipedia</title>
<link rel="canonical" href="https://en.wikipedia.org/wiki/Alien_(film)" /></head><body>
<h1 id="firstHeading">Alien</h1>
<div id="mw-content-text" class="mw-content-ltr">
<table class="infobox vevent"><tr><th colspan="2" class="summary">Alien</th></tr>
<tr><th>Directed by</th><td><a href="/wiki/Ridley_Scott" title="Ridley Scott">Ridley Scott</a></td></tr>
<tr><th>Starring</th><td><div class="plainlist"><ul><li><a href="/wiki/Tom_Skerritt">Tom Skerritt</a></li>
<li><a href="/wiki/Sigourney_Weaver">Sigourney Weaver</a></li></ul></div></td></tr>
<tr><th>Box office</th><td>$104.9 million<sup class="reference"><a href="#cite_note-1">[1]</a></sup></td></tr>
</table>
<p><a href="/wiki/File:Alien_poster.jpg">poster</a> <b>Alien</b> is a 1979 <a href="/wiki/Science_fiction_film">science
fiction</a> <a href="/wiki/Horror_film#History">horror film</a> by <a href="/wiki/Ridley_Scott">Ridley Scott</a>,
<a href="/wiki/2001:_A_Space_Odyssey_(film)">after 2001</a>, <a href="/wiki/Help:IPA">IPA</a>,
<a href="/w/index.php?title=Nothing&amp;redlink=1" class="new">red</a>.</p>
<style>.x{}</style>
<p>On Rotten Tomatoes the film holds an approval rating of 98% based on 120 reviews, with an average rating of
9.2/10.</p>
<table class="navbox"><tr><td><a href="/wiki/Alien_(franchise)">Alien franchise</a></td></tr></table>
</div>
<div id="catlinks"><a href="/wiki/Category:1979_films">1979 films</a></div>
</body></html>"""

NOT_A_FILM_PAGE = """<html><body><div id="mw-content-text">
<table class="infobox"><tr><th>Author</th><td>Someone</td></tr></table><a href="/wiki/Novel">novel</a>
</div></body></html>"""

PARSOID = """<!DOCTYPE html>
<html prefix="dc: http://purl.org/dc/terms/ mw: http://mediawiki.org/rdf/"><head>
<title>Heat (1995 film)</title><link rel="dc:isVersionOf" href="//en.wikipedia.org/wiki/Heat_(1995_film)"/>
</head><body>
<table class="infobox" about="#mwt1" typeof="mw:Transclusion" data-mw='{"parts":[{"template":{"target":{"wt":"Infobox film","href":"./Template:Infobox_film"},"params":{"name":{"wt":"Heat"},"director":{"wt":"[[Michael Mann (director)|Michael Mann]]"},"starring":{"wt":"{{Plainlist|\\n* [[Al Pacino]]\\n* [[Robert De Niro]]\\n}}"}},"i":0}}]}'>
<tr><td><a rel="mw:WikiLink" href="./Michael_Mann_(director)">Michael Mann</a>
<a rel="mw:WikiLink" href="./Template_generated_link">not in the wikitext</a></td></tr></table>
<span about="#mwt1">continuation of the infobox</span>
<p><b>Heat</b> is a <a rel="mw:WikiLink" href="./Crime_film" title="Crime film">crime film</a> with
<a rel="mw:WikiLink" href="./Val_Kilmer#Career">Val Kilmer</a> and <a rel="mw:WikiLink" href="./Help:Contents">help</a>.</p>
<div class="navbox" about="#mwt9" typeof="mw:Transclusion" data-mw='{"parts":[{"template":{"target":{"wt":"Michael Mann","href":"./Template:Michael_Mann"},"params":{},"i":0}}]}'>
<a rel="mw:WikiLink" href="./Thief_(film)">Thief</a></div>
<link rel="mw:PageProp/Category" href="./Category:1995_films"/>
<link rel="mw:PageProp/Language" href="https://de.wikipedia.org/wiki/Heat_(1995)"/>
</body></html>"""


def records(path: Path) -> list[list]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def make_tarball(path: Path, pages: dict[str, str | bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in pages.items():
            data = text.encode() if isinstance(text, str) else text
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_a_rendered_page_gives_its_infobox_body_links_and_ratings() -> None:
    result = collect_batch(HtmlBatch(pages=(("movies/Alien_(film).html", RENDERED.encode()),)))
    (film,) = result.films
    assert film.title == "Alien (film)"
    assert film.infobox == {"name": "Alien", "director": "Ridley Scott",
                            "starring": "Tom Skerritt, Sigourney Weaver", "gross": "$104.9 million"}
    assert film.links == ["Ridley Scott", "Tom Skerritt", "Sigourney Weaver", "Science fiction film", "Horror film",
                          "Ridley Scott", "2001: A Space Odyssey (film)"]
    assert film.kinds == "iii" + "bbbb"
    assert (film.rotten_tomatoes, film.rating) == ("98%", "9.2/10")


def test_a_parsoid_page_reads_template_calls_as_their_wikitext() -> None:
    result = collect_batch(HtmlBatch(pages=(("Heat.html", PARSOID.encode()),)))
    (film,) = result.films
    assert film.title == "Heat (1995 film)"
    assert film.infobox == {"name": "Heat", "director": "Michael Mann", "starring": "Al Pacino, Robert De Niro"}
    assert film.links == ["Michael Mann (director)", "Al Pacino", "Robert De Niro", "Crime film", "Val Kilmer",
                          "Category:1995 films"]
    assert film.kinds == "iii" + "bb" + "c"


# A rendered page's citations: a reference list, a <cite> in the prose, the sections that list sources.
RENDERED_CITATIONS = RENDERED.replace('<table class="navbox">', """<p>Voted best by <a href="/wiki/BBC_Radio_1Xtra">1Xtra</a>
listeners.<sup class="reference"><a href="#cite_note-2">[2]</a></sup></p>
<div class="mw-parser-output"><h2><span class="mw-headline" id="Legacy">Legacy</span></h2>
<p>A sequel, <a href="/wiki/Aliens_(film)">Aliens</a>.</p>
<h2><span class="mw-headline" id="References">References</span><span>[edit]</span></h2>
<div class="reflist"><ol class="references"><li><cite class="citation journal"><i><a href="/wiki/Empire_(magazine)">Empire</a></i>
(<a href="/wiki/Bauer_Media_Group">Bauer</a>)</cite></li></ol></div>
<h2><span class="mw-headline" id="External_links">External links</span></h2>
<ul><li><a href="/wiki/AllMovie">AllMovie</a></li></ul></div>
<table class="navbox">""")

PARSOID_CITATIONS = PARSOID.replace('<div class="navbox"', """<p>Reviewed in <sup typeof="mw:Extension/ref"
 about="#mwt5"><a href="#cite_note-1">[1]</a></sup>.</p>
<section data-mw-section-id="3"><h2 id="References">References</h2>
<ol class="mw-references references"><li><span typeof="mw:Transclusion" about="#mwt6" data-mw='{"parts":[{"template":{"target":{"wt":"cite web"},"params":{"publisher":{"wt":"[[Bauer Media Group]]"}},"i":0}}]}'>Bauer</span></li></ol>
</section>
<section data-mw-section-id="4"><h2 id="Legacy">Legacy</h2><p><a rel="mw:WikiLink" href="./Public_Enemies">PE</a></p>
<span typeof="mw:Transclusion" about="#mwt7" data-mw='{"parts":[{"template":{"target":{"wt":"Navbox"},"params":{"list1":{"wt":"[[Thief (film)]]"}},"i":0}}]}'>x</span>
</section>
<div class="navbox\"""")


def test_a_rendered_page_tells_citations_from_prose() -> None:
    (film,) = collect_batch(HtmlBatch(pages=(("movies/Alien_(film).html", RENDERED_CITATIONS.encode()),))).films
    kinds = dict(zip(film.links, film.kinds))
    assert film.links[-5:] == ["BBC Radio 1Xtra", "Aliens (film)", "Empire (magazine)", "Bauer Media Group", "AllMovie"]
    assert film.kinds[-5:] == "bb" + "rr" + "r"
    assert kinds["Ridley Scott"] == "b" and film.kinds.startswith("iii")
    assert film.cited_only() == {"Empire (magazine)", "Bauer Media Group", "AllMovie"}


def test_a_parsoid_page_tells_citations_navboxes_and_categories_from_prose() -> None:
    (film,) = collect_batch(HtmlBatch(pages=(("Heat.html", PARSOID_CITATIONS.encode()),))).films
    assert film.links == ["Michael Mann (director)", "Al Pacino", "Robert De Niro", "Crime film", "Val Kilmer",
                          "Bauer Media Group", "Public Enemies", "Thief (film)", "Category:1995 films"]
    assert film.kinds == "iii" + "bb" + "r" + "b" + "n" + "c"
    assert film.cited_only() == {"Bauer Media Group", "Thief (film)"}


def test_bad_and_non_film_pages_are_counted_and_named(tmp_path: Path) -> None:
    pages = {"movies/Alien.html": RENDERED, "movies/A_novel.html": NOT_A_FILM_PAGE,
             "movies/Saved_error_page.html": "<html><body><p>Wikimedia error</p></body></html>",
             "movies/Empty.html": b"", "movies/notes.txt": "not a page"}
    tarball = make_tarball(tmp_path / "pages.tar.gz", pages)
    summary = collect(tarball, tmp_path / "films.ndjson", workers=1)
    assert [r[0] for r in records(tmp_path / "films.ndjson")] == ["Alien"]
    assert summary.pages == 4
    assert summary.skipped == {NO_FILM_INFOBOX: 1, NO_CONTENT: 2}
    assert any("Saved_error_page.html" in p and "mw-content-text" in p for p in summary.problems)
    with pytest.raises(CollectorError, match="Saved_error_page.html"):
        collect(tarball, tmp_path / "strict.ndjson", workers=1, strict=True)
    every = collect(tarball, tmp_path / "every.ndjson", workers=1, every_page=True)
    assert [r[0] for r in records(tmp_path / "every.ndjson")] == ["Alien", "A novel"]
    assert every.films == 2


def test_a_directory_of_pages_is_read_in_name_order(tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "b_Film.html").write_text(RENDERED.replace("Alien", "Beta"))
    (pages / "a_Film.html").write_text(RENDERED)
    (pages / "unreadable.html").write_bytes(b"\x00\x01 not html")
    summary = collect(pages, tmp_path / "films.ndjson", workers=1)
    assert [r[0] for r in records(tmp_path / "films.ndjson")] == ["A Film", "B Film"]
    assert summary.skipped == {NO_CONTENT: 1}


@pytest.mark.real_data
def test_real_saved_pages_agree_with_the_independent_builder(tmp_path: Path) -> None:
    """The first members of the shared tarball against wp_movies_oscars.ndjson, built from the same pages."""
    # Its absence fails the test: CI must not pass without the real pages.
    assert SHARED_TARBALL.is_file(), f"{SHARED_TARBALL} is missing: ../shared/data must be beside the checkout"
    with tarfile.open(SHARED_TARBALL) as tar:
        members = [m for m in tar.getmembers() if m.name.endswith(".html")][:25]
        pages = {m.name: tar.extractfile(m).read() for m in members}
    tarball = make_tarball(tmp_path / "some.tar.gz", pages)
    collect(tarball, tmp_path / "films.ndjson", workers=1, every_page=True)
    reference = {r[0]: r for r in records(SHARED_TARBALL.parent / "wp_movies_oscars.ndjson")}
    mine = records(tmp_path / "films.ndjson")
    assert len(mine) == 25
    overlaps = []
    for title, infobox, links, rotten, rating, kinds, *ids in mine:
        assert len(kinds) == len(links) and set(kinds) <= set(LINK_KINDS)
        ref = reference[title]
        overlaps.append(len(set(links) & set(ref[2])) / len(set(links) | set(ref[2])))
        assert set(ref[1].items()) <= set(infobox.items()) or ref[1].keys() == infobox.keys()
    assert sum(overlaps) / len(overlaps) > 0.95
