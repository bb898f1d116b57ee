"""A film's IMDb and Wikidata ids, as the collector reads them from wikitext, rendered and Parsoid HTML."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from movielinks.collector.htmlpages import HtmlBatch, collect_batch
from movielinks.collector.links import Namespaces
from movielinks.collector.wikitext import film_from_wikitext
from movielinks.common.film_record import FilmRecord, from_record, record_problem
from tests.collector.test_collector_html import PARSOID, RENDERED, SHARED_TARBALL
from tests.collector_fixtures import film_text

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("call, expected", [
    ("{{IMDb title|0078748|Alien}}", "tt0078748"),
    ("{{IMDb title|id=0078748|title=Alien}}", "tt0078748"),
    ("{{imdb title | tt0078748 }}", "tt0078748"),
    ("{{IMDb film|78748}}", "tt0078748"),
    ("{{IMDb title}}", None),  # no id: the template reads Wikidata, which a dump does not hold
    ("{{IMDb title|not an id}}", None),
])
def test_the_imdb_title_call_of_the_wikitext_gives_the_id(call: str, expected: str | None) -> None:
    film = film_from_wikitext("Alien (film)", film_text("Ridley Scott", "Sigourney Weaver",
                                                         extra=f"\n==External links==\n* {call}\n"), Namespaces.english())
    assert isinstance(film, FilmRecord)
    assert film.ids == ({"imdb": expected} if expected else {})


def test_an_imdb_call_inside_a_reference_is_another_films() -> None:
    text = film_text("Ridley Scott", extra="Remade.<ref>{{IMDb title|0099999|Alien (1990)}}</ref>\n"
                                           "==External links==\n* {{IMDb title|0078748|Alien}}\n")
    film = film_from_wikitext("Alien (film)", text, Namespaces.english())
    assert film.ids == {"imdb": "tt0078748"}


# What the site rendered for {{IMDb title}} and the page's Wikidata item, with an IMDb link in a
# citation first (another film's page), as the real Casablanca page has.
RENDERED_IDS = RENDERED.replace('<table class="navbox">', """
<ol class="references"><li><span class="reference-text"><cite class="citation web"><a rel="nofollow"
 class="external text" href="http://www.imdb.com/title/tt0099999/">"Alien (1990)"</a>. Internet Movie Database</cite>
</span></li></ol>
<h2><span class="mw-headline" id="External_links">External links</span></h2>
<ul><li><a rel="nofollow" class="external text" href="http://www.imdb.com/title/tt0078748/"><i>Alien</i></a> at the
<a href="/wiki/Internet_Movie_Database" title="Internet Movie Database">Internet Movie Database</a></li></ul>
<table class="navbox">""").replace("</body>", """<div id="p-tb"><ul><li id="t-wikibase">
<a href="//www.wikidata.org/wiki/Q103569" title="Link to connected data repository item">Wikidata item</a></li></ul></div>
</body>""")

PARSOID_IDS = PARSOID.replace('<link rel="mw:PageProp/Category"', """<section><h2 id="External_links">External links</h2>
<ul><li><span about="#mwt20" typeof="mw:Transclusion" data-mw='{"parts":[{"template":{"target":{"wt":"IMDb title",
"href":"./Template:IMDb_title"},"params":{"1":{"wt":"0113277"},"2":{"wt":"Heat"}},"i":0}}]}'><a rel="mw:ExtLink"
href="https://www.imdb.com/title/tt0113277/">Heat</a> at IMDb</span></li></ul></section>
<link rel="mw:PageProp/Category\"""")


def test_a_rendered_page_gives_the_imdb_link_of_its_external_links_and_its_wikidata_item() -> None:
    (film,) = collect_batch(HtmlBatch(pages=(("movies/Alien_(film).html", RENDERED_IDS.encode()),))).films
    assert film.ids == {"imdb": "tt0078748", "wikidata": "Q103569"}
    (plain,) = collect_batch(HtmlBatch(pages=(("movies/Alien_(film).html", RENDERED.encode()),))).films
    assert plain.ids == {}


def test_a_parsoid_page_gives_the_id_of_its_imdb_title_call() -> None:
    (film,) = collect_batch(HtmlBatch(pages=(("Heat.html", PARSOID_IDS.encode()),))).films
    assert film.ids == {"imdb": "tt0113277"}
    without_id = PARSOID_IDS.replace('"params":{"1":{"wt":"0113277"},"2":{"wt":"Heat"}}', '"params":{}')
    (film,) = collect_batch(HtmlBatch(pages=(("Heat.html", without_id.encode()),))).films
    assert film.ids == {"imdb": "tt0113277"}  # read from what the call rendered (Wikidata's id)


def test_the_record_carries_ids_as_a_seventh_element_and_refuses_bad_ones() -> None:
    film = FilmRecord("Alien (film)", {}, ["Ridley Scott"], None, None, None, {"imdb": "tt0078748"})
    row = json.loads(film.to_json_line())
    assert row == ["Alien (film)", {}, ["Ridley Scott"], None, None, None, {"imdb": "tt0078748"}]
    assert record_problem(row) is None and from_record(row) == film
    assert len(json.loads(FilmRecord("A", {}, [], None, None).to_json_line())) == 5  # no ids: the notebook's record
    assert "imdb id '78748' is not one" in record_problem(row[:6] + [{"imdb": "78748"}])
    assert "unknown id scheme 'tmdb'" in record_problem(row[:6] + [{"tmdb": "348"}])
    assert "ids must be an object" in record_problem(row[:6] + [["tt0078748"]])


@pytest.mark.real_data
@pytest.mark.slow
def test_the_oscar_pages_name_their_films_imdb_ids(tmp_path: Path) -> None:
    """The real saved pages through the `collector` command: nearly every Oscar film's article names its
    IMDb id (1,274 of 1,278 when this was written), and the well-known ones are right."""
    assert SHARED_TARBALL.is_file(), f"{SHARED_TARBALL} is missing: ../shared/data must be beside the checkout"
    out = tmp_path / "oscars.ndjson"
    subprocess.run([sys.executable, "-m", "movielinks.collector", "collect", str(SHARED_TARBALL), "--out", str(out),
                    "--every-page", "--workers", "1"], cwd=REPO, check=True, capture_output=True)
    ids = {row[0]: (row[6] if len(row) == 7 else {}) for row in map(json.loads, out.read_text().splitlines())}
    assert len(ids) == 1278
    assert sum("imdb" in found for found in ids.values()) >= 1270
    assert sum("wikidata" in found for found in ids.values()) >= 1270
    assert ids["Casablanca (film)"] == {"imdb": "tt0034583", "wikidata": "Q132689"}  # not its citations' remakes
    assert ids["The Shawshank Redemption"]["imdb"] == "tt0111161"
    assert ids["Star Wars (film)"]["imdb"] == "tt0076759"
    assert "imdb" not in ids["The Dark at the Top of the Stairs"]  # its only IMDb link is in a citation
