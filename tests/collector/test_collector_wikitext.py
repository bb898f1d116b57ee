"""Link normalisation, film detection and infobox text, on wikitext snippets."""
from __future__ import annotations

import html
import time

import mwparserfromhell
import pytest

from movielinks.collector.links import Namespaces, normalise_link
from movielinks.collector.record import ratings_from_text
from movielinks.collector.wikitext import DISAMBIGUATION, FILM_HINT, NOT_A_FILM, film_from_wikitext, wikilinks

ENGLISH = Namespaces.english()


@pytest.mark.parametrize("target, page", [
    ("Christopher_Nolan", "Christopher Nolan"),
    ("christopher  nolan", "Christopher nolan"),
    (" Matthew McConaughey#Early life ", "Matthew McConaughey"),
    ("AT&amp;T", "AT&T"),
    ("Caf%C3%A9", "Café"),
    ("Category:2014 films", "Category:2014 films"),
    ("category:space_films", "Category:Space films"),
    (":Category:Space films", "Category:Space films"),
    ("2001: A Space Odyssey (film)", "2001: A Space Odyssey (film)"),
    ("Star Wars: Episode IV", "Star Wars: Episode IV"),
    ("#Plot", None),
    ("File:Poster.jpg", None),
    ("Image:Poster.jpg", None),
    (":File:Poster.jpg", None),
    ("Template:Infobox film", None),
    ("Help:Contents", None),
    ("Wikipedia:Citation needed", None),
    ("WP:NPOV", None),
    ("de:Interstellar", None),
    ("zh-yue:星際啓示錄", None),
    (":fr:Interstellar (film)", None),
    ("wikt:space", None),
    ("Commons:Category:Films", None),
    ("{{PAGENAME}}", None),
])
def test_link_targets_are_normalised_as_mediawiki_does(target: str, page: str | None) -> None:
    assert normalise_link(target, ENGLISH) == page


def test_a_dumps_own_namespace_names_are_used() -> None:
    german = Namespaces.english().with_site_names({6: "Datei", 14: "Kategorie"})
    assert normalise_link("Datei:Plakat.jpg", german) is None
    assert normalise_link("Kategorie:Film", german) == "Kategorie:Film"
    assert normalise_link("Category:Film", german) == "Kategorie:Film"


@pytest.mark.parametrize("text, is_film", [
    ("{{Infobox film\n| name = X}}", True),
    ("{{infobox film| name = X}}", True),
    ("{{ Infobox_film <!-- a comment -->| name = X}}", True),
    ("{{Infobox film awards| name = X}}", False),
    ("{{Infobox film festival| name = X}}", False),
    ("{{Infobox Film| name = X}}", False),
    ("{{Infobox television| name = X}}", False),
])
def test_only_the_exact_infobox_film_template_makes_a_film(text: str, is_film: bool) -> None:
    found = film_from_wikitext("X", text + " [[Link]]", ENGLISH)
    assert (found != NOT_A_FILM) is is_film
    assert FILM_HINT.search(text.encode()) is not None or not is_film


def test_a_disambiguation_page_with_an_infobox_is_not_a_film() -> None:
    assert film_from_wikitext("X", "{{Infobox film}} [[A]] {{Disambiguation|film}}", ENGLISH) == DISAMBIGUATION


def test_nested_templates_keep_their_links_in_order_with_repeats() -> None:
    text = ("{{Infobox film | starring = {{ubl|[[A]]|{{nowrap|[[B (actor)|B]]}}}} | released = {{Film date|1999|"
            "[[Cannes]]}} }} [[A]] {{Quote|text=[[C]] said {{lang|fr|[[D]]}}}}")
    film = film_from_wikitext("X", text, ENGLISH)
    assert film.links == ["A", "B (actor)", "Cannes", "A", "C", "D"]
    assert film.infobox == {"starring": "A, B", "released": "1999 Cannes"}


def test_the_rotten_tomatoes_prose_template_gives_both_figures() -> None:
    film = film_from_wikitext("X", "{{Infobox film}}\n\n{{Rotten Tomatoes prose|93|8.3|282}}", ENGLISH)
    assert (film.rotten_tomatoes, film.rating) == ("93%", "8.3/10")


@pytest.mark.parametrize("text, figures", [
    ("Rotten Tomatoes gives it 87% from 200 critics, with an average rating of 7.5/10.", ("87%", "7.5/10")),
    ("On Rotten Tomatoes the film has a score of 45 % and no average.", ("45%", None)),
    ("It was released in 1999. Critics liked it: 90% of them.", (None, None)),
    ("Rotten Tomatoes reports 72%.\n\nA later paragraph rates it 3/10.", ("72%", None)),
])
def test_ratings_are_read_near_rotten_tomatoes(text: str, figures: tuple) -> None:
    assert ratings_from_text(text) == figures


def test_the_links_found_on_the_text_are_those_of_mwparserfromhell_s_tree() -> None:
    """wikilinks() reads the text with one regular expression; the parser's tree must agree with it."""
    from tests.collector.test_collector_dump import INTERSTELLAR, trap_pages

    texts = [INTERSTELLAR, *(html.unescape(p.split('xml:space="preserve">', 1)[1].split("</text>", 1)[0])
                             for p in trap_pages() if 'xml:space="preserve">' in p),
             "A [[b]] <!-- [[not a link]] --> <nowiki>[[nor this]]</nowiki> {{cite|x=[[C|c]]}} [[D]]s "
             "<ref name=a>[[E#F|e]]</ref> [[File:G.png|thumb|[[H]] and [[I|i]]]] [[ J ]] [[K|]]"]
    for text in texts:
        tree = [normalise_link(str(link.title), ENGLISH) for link in mwparserfromhell.parse(text).filter_wikilinks()]
        found = [normalise_link(target, ENGLISH) for target in wikilinks(text)]
        assert [link for link in found if link] == [link for link in tree if link]
    assert [normalise_link(t, ENGLISH) for t in wikilinks(texts[-1])] == ["B", "C", "D", "E", "H", "I", "J", "K"]


def test_wikitext_links_say_where_they_are() -> None:
    text = """{{Infobox film | director = [[Ridley Scott]]<ref>{{cite web|publisher=[[Variety (magazine)|Variety]]}}</ref>
| starring = [[Sigourney Weaver]] }}
'''Alien''' is a [[horror film]] by [[Ridley Scott]].<ref name="a">{{cite news|work=[[Empire (magazine)|Empire]]}}</ref>
{{Navbox|list1=[[Alien 3]]}}
== References ==
{{reflist}}
* {{citation|publisher=[[Bauer Media Group]]}}
== Legacy ==
[[Aliens (film)]] and {{Cite book|title=[[The Book]]}}.
== External links ==
* [[IMDb]]
[[Category:1979 films]]
"""
    film = film_from_wikitext("Alien (film)", text, Namespaces.english())
    assert film.links == ["Ridley Scott", "Variety (magazine)", "Sigourney Weaver", "Horror film", "Ridley Scott",
                          "Empire (magazine)", "Alien 3", "Bauer Media Group", "Aliens (film)", "The Book", "IMDb",
                          "Category:1979 films"]
    assert film.kinds == "iri" + "bbr" + "n" + "r" + "br" + "r" + "c"
    assert film.cited_only() == {"Variety (magazine)", "Empire (magazine)", "Alien 3", "Bauer Media Group",
                                 "The Book", "IMDb"}


def test_link_kinds_stay_linear_in_deeply_nested_citations() -> None:
    depth = 100_000  # near MAX_WIKITEXT_CHARS
    text = ("{{Infobox film | director = [[A]] }}" + "{{cite web|title=" * depth + "[[Deep]]" + "}}" * depth
            + " [[Prose]]")
    started = time.perf_counter()
    film = film_from_wikitext("Deep (film)", text, Namespaces.english())
    assert time.perf_counter() - started < 3  # marking every nested call's span: 4.8 s here, 0.5 s now
    assert list(zip(film.links, film.kinds)) == [("A", "i"), ("Deep", "r"), ("Prose", "b")]
