"""The web explorer in a real headless browser (Debian's chromium, driven by Playwright)
against the real server process: search with the keyboard (Enter resolves as LookupTitle),
neighbours with years and shared links, like/dislike ticks updating recommendations with
their years and score meaning, the map and its named clusters, the token box, phone width.

Screenshots land in tests/output/explorer/ (git-ignored), to be looked at.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from movielinks.client import ClientError, MovielinksClient
from movielinks.indexer.build import build_index
from tests.e2e_server import REPO, running_server
from tests.fixtures import make_run

pytestmark = pytest.mark.slow  # a real server and a browser

CHROMIUM = Path("/usr/bin/chromium")
# How Debian's chromium runs on these machines: no sandbox as root, no GPU, and no
# background connections to a network that refuses them.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = REPO / "tests" / "output" / "explorer"
TITLES = ["Interstellar (film)", "Alien (film)", "The Martian (film)", "Heat (1995 film)", "Gravity (2013 film)",
          "3 Godfathers", "The Godfather", "Jurassic World", "Jurassic Park (film)"]
WAIT_MS = 15_000
# A phone the explorer must be readable on: 390 CSS pixels wide, as an iPhone 12-15.
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("explorer")
    build_index(make_run(tmp / "run", titles=TITLES, n_movies=400, n_links=150, years=True), tmp / "index",
                progress=False)
    with running_server(tmp / "index", "--http-port", "0") as server:
        with MovielinksClient(server.address) as client:
            yield server, client


@pytest.fixture(scope="module")
def served_with_token(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("explorer-token")
    build_index(make_run(tmp / "run", titles=TITLES, n_movies=200, n_links=80), tmp / "index", progress=False)
    (tmp / "token").write_text("s3cret-token\n")
    with running_server(tmp / "index", "--http-port", "0", "--token-file", str(tmp / "token")) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install -y chromium)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def open_page(browser, url: str, **context_options) -> Page:
    page = browser.new_context(**context_options).new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    page.goto(url)
    return page


def shown_titles(page: Page, selector: str) -> list[str]:
    return page.locator(selector).evaluate_all("items => items.map(i => i.dataset.title)")


def test_search_neighbours_ticks_recommendations_and_map(served, browser):
    """Long because it is one person's session in the explorer: each step starts from what the one before showed."""
    server, client = served
    page = open_page(browser, server.http_url, viewport={"width": 1280, "height": 1000})
    expect(page.locator("#about")).to_contain_text("400 movies")

    # Keyboard only: type, arrow down to the match, Enter.
    page.locator("#search").focus()
    page.keyboard.type("inters")
    expect(page.locator("#suggestions li").first).to_have_text("Interstellar (film)")
    page.keyboard.press("ArrowDown")
    expect(page.locator("#search")).to_have_attribute("aria-activedescendant", "suggestion-0")
    page.keyboard.press("Enter")

    expected = client.similar_movies("Interstellar (film)", k=10)
    expect(page.locator("#neighbours li")).to_have_count(10)
    assert shown_titles(page, "#neighbours li") == [n.name for n in expected.neighbours]
    first = page.locator("#neighbours li").first
    expect(first.locator(".score")).to_have_text(f"cosine {expected.neighbours[0].score:.3f}")
    # The chips are the links each neighbour's article shares with Interstellar's, as SimilarMovies gives them.
    with_reasons = client.similar_movies("Interstellar (film)", k=10, reasons=4)
    chips = [item.locator(".shared .chip").all_inner_texts() for item in page.locator("#neighbours li").all()]
    assert chips == [[r.link for r in n.reasons] for n in with_reasons.neighbours] and any(chips)
    expect(page.locator("#selected-title")).to_contain_text("Interstellar (film)")
    years = page.locator("#neighbours .year").all_inner_texts()
    assert any(y.isdigit() and 1950 <= int(y) < 2020 for y in years), years

    # The map: every sampled movie a dot, the selection and its neighbours highlighted.
    expect(page.locator("#map circle.sel")).to_have_count(1)
    assert page.locator("#map circle.sel").get_attribute("data-title") == "Interstellar (film)"
    expect(page.locator("#map circle.nb")).to_have_count(10)
    expect(page.locator("#map-selected-label")).to_have_text("Interstellar (film)")
    assert page.locator("#map circle").count() == 400
    page.screenshot(path=SCREENSHOTS / "desktop-neighbours.png", full_page=True)

    # Like the first neighbour with the keyboard (focus, space): recommendations appear.
    liked = expected.neighbours[0].name
    page.get_by_label(f"like {liked}", exact=True).first.focus()
    page.keyboard.press("Space")
    want = [m.title for m in client.recommend([liked], k=10).best]
    expect(page.locator("#recommendations li")).to_have_count(10)
    expect(page.locator("#recommendations li").first).to_have_attribute("data-title", want[0])
    assert shown_titles(page, "#recommendations li") == want
    expect(page.locator("#map circle.liked")).to_have_count(1)

    # Disliking another one changes them to the SVM's answer for both.
    disliked = expected.neighbours[5].name
    page.get_by_label(f"dislike {disliked}", exact=True).first.check()
    want_after = [m.title for m in client.recommend([liked], [disliked], k=10).best]
    expect(page.locator("#recommendations li").first).to_have_attribute("data-title", want_after[0])
    page.wait_for_function("want => [...document.querySelectorAll('#recommendations li')]"
                           ".map(li => li.dataset.title).join('\\n') === want", arg="\n".join(want_after))
    expect(page.locator("#picks .chip")).to_have_count(2)
    expect(page.locator("#to-recommendations")).to_be_hidden()  # a phone's shortcut only
    page.screenshot(path=SCREENSHOTS / "desktop-recommendations.png", full_page=True)

    # Hovering a background dot shows its title.
    dot = page.locator("#map circle.bg").nth(7)
    title = dot.get_attribute("data-title")
    dot.hover(force=True)
    expect(page.locator("#map-hover")).to_be_visible()
    expect(page.locator("#map-hover")).to_contain_text(title)
    page.locator("#map-wrap").screenshot(path=SCREENSHOTS / "map-hover.png")

    # Clicking a recommendation selects it.
    page.locator("#recommendations li button").first.click()
    expect(page.locator("#selected-title")).to_contain_text(want_after[0])
    assert not page.errors, page.errors


def test_unknown_title_is_said_on_the_page(served, browser):
    server, _ = served
    page = open_page(browser, server.http_url, viewport={"width": 1280, "height": 900})
    page.locator("#search").fill("Zzyzx Qwerty")
    page.locator("#search").press("Escape")
    page.locator("#search").press("Enter")
    expect(page.locator("#status")).to_contain_text("unknown movie 'Zzyzx Qwerty'")
    expect(page.locator("#status")).to_have_class("error")
    assert not page.errors, page.errors


def test_phone_width_is_readable(served, browser):
    server, client = served
    page = open_page(browser, f"{server.http_url}#movie=The%20Martian%20(film)", **PHONE)
    expect(page.locator("#neighbours li")).to_have_count(10)
    expect(page.locator("#map circle.sel")).to_have_count(1)
    # Nothing wider than the screen: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    font_px = page.locator("#neighbours li button").first.evaluate("b => parseFloat(getComputedStyle(b).fontSize)")
    assert font_px >= 14
    page.screenshot(path=SCREENSHOTS / "phone.png", full_page=True)

    # Recommendations right after the neighbours whose boxes drive them, before the map.
    liked = shown_titles(page, "#neighbours li")[0]
    page.get_by_label(f"like {liked}", exact=True).first.check()
    expect(page.locator("#recommendations li")).to_have_count(10)
    box = page.locator("#neighbours-panel").bounding_box()
    recommendations = page.locator("#recommend-heading").bounding_box()
    map_top = page.locator("#map-heading").bounding_box()["y"]
    assert 0 <= recommendations["y"] - (box["y"] + box["height"]) < 60 and recommendations["y"] < map_top
    # Where the box was ticked, one tap away: a button to them while they are off screen.
    jump = page.locator("#to-recommendations")
    expect(jump).to_have_text("↓ 10 recommendations")
    page.screenshot(path=SCREENSHOTS / "phone-liked.png")
    jump.tap()
    expect(page.locator("#recommendations li").first).to_be_in_viewport()
    expect(jump).to_be_hidden()
    page.screenshot(path=SCREENSHOTS / "phone-recommendations.png")
    assert not page.errors, page.errors


def pick_by_enter(page: Page, text: str) -> None:
    """Type `text` and press Enter with no suggestion highlighted, once the suggestions have come."""
    page.locator("#search").fill(text)
    expect(page.locator("#suggestions li").first).to_be_visible()
    page.locator("#search").press("Enter")


def test_enter_resolves_the_typed_text_as_lookup_title_does(served, browser):
    server, client = served
    page = open_page(browser, server.http_url, viewport={"width": 1280, "height": 900})
    # No film chosen: no like/dislike boxes, and this server asks for no token.
    expect(page.locator("#about")).to_contain_text("400 movies")
    expect(page.locator("#selected")).to_be_hidden()
    assert page.locator("input[type=checkbox]:visible").count() == 0
    expect(page.locator("#token-box")).to_be_hidden()

    # "godfather": The Godfather first among the suggestions (its name, up to the article), and Enter picks it
    # although "3 Godfathers" is shorter.
    page.locator("#search").fill("godfather")
    expect(page.locator("#suggestions li").first).to_have_text("The Godfather")
    assert "3 Godfathers" in page.locator("#suggestions li").all_inner_texts()
    page.locator("#search").press("Enter")
    assert client.lookup_title("godfather").title == "The Godfather"
    expect(page.locator("#selected-title")).to_contain_text("The Godfather ·")
    expect(page.locator("#neighbours li")).to_have_count(10)
    expect(page.locator("#selected input[type=checkbox]")).to_have_count(2)

    # "Jurassic" begins two titles and is neither: asked, as LookupTitle asks, and the previous answer goes.
    with pytest.raises(ClientError) as jurassic:
        client.lookup_title("Jurassic")
    pick_by_enter(page, "Jurassic")
    expect(page.locator("#status")).to_have_text(jurassic.value.message)
    assert "Jurassic World" in jurassic.value.message and "Jurassic Park (film)" in jurassic.value.message
    expect(page.locator("#neighbours li")).to_have_count(0)
    page.screenshot(path=SCREENSHOTS / "desktop-asked.png")
    page.locator("#status button", has_text="Jurassic Park (film)").click()  # each title offered is one click away
    expect(page.locator("#selected-title")).to_contain_text("Jurassic Park (film) ·")
    # Arrow down then Enter still picks the highlighted suggestion.
    page.locator("#search").fill("inters")
    expect(page.locator("#suggestions li").first).to_have_text("Interstellar (film)")
    page.locator("#search").press("ArrowDown")
    page.locator("#search").press("Enter")
    expect(page.locator("#selected-title")).to_contain_text("Interstellar (film) ·")
    assert not page.errors, page.errors


def test_an_unknown_title_clears_the_previous_answer(served, browser):
    server, _ = served
    page = open_page(browser, f"{server.http_url}#movie=Alien%20(film)", viewport={"width": 1280, "height": 900})
    expect(page.locator("#neighbours li")).to_have_count(10)
    page.locator("#search").fill("Zzyzx Qwerty")
    page.locator("#search").press("Escape")
    page.locator("#search").press("Enter")
    expect(page.locator("#status")).to_contain_text("unknown movie 'Zzyzx Qwerty'")
    expect(page.locator("#neighbours li")).to_have_count(0)
    expect(page.locator("#selected")).to_be_hidden()
    expect(page.locator("#neighbours-empty")).to_be_visible()
    expect(page.locator("#map circle.sel")).to_have_count(0)
    page.screenshot(path=SCREENSHOTS / "desktop-unknown-title.png", full_page=True)
    assert not page.errors, page.errors


def test_the_token_box_shows_only_where_the_server_asks_for_a_token(served_with_token, browser):
    page = open_page(browser, served_with_token.http_url, viewport={"width": 1280, "height": 900})
    expect(page.locator("#token-box")).to_be_visible()
    expect(page.locator("#status")).to_contain_text("bearer token")  # GetInfo refused until it is given
    expect(page.locator("#token")).to_be_visible()  # opened by the refusal
    page.locator("#token").fill("s3cret-token")
    page.locator("#token").press("Tab")
    page.locator("#search").fill("Alien (film)")
    page.locator("#search").press("Escape")
    page.locator("#search").press("Enter")
    expect(page.locator("#neighbours li")).to_have_count(10)
    expect(page.locator("#map text.cluster-label")).to_have_count(8)  # the clusters are behind the token too
    assert not page.errors, page.errors


def test_recommendations_show_year_and_what_the_score_means(served, browser):
    server, client = served
    page = open_page(browser, f"{server.http_url}#movie=Interstellar%20(film)",
                     viewport={"width": 1280, "height": 1000})
    expect(page.locator("#neighbours li")).to_have_count(10)
    liked = shown_titles(page, "#neighbours li")[0]
    page.get_by_label(f"like {liked}", exact=True).first.check()
    want = client.recommend([liked], k=10)
    expect(page.locator("#recommendations li")).to_have_count(10)
    expect(page.locator("#recommend-meaning")).to_have_text(f"Score: {want.score_meaning}")
    assert want.score_meaning
    years = page.locator("#recommendations .year").all_inner_texts()
    assert years == [str(m.year) if m.year else "year unknown" for m in want.best]
    assert any(y.isdigit() for y in years), years
    assert page.locator("#recommendations .decision").all_inner_texts() == [f"{m.decision_value:.2f}" for m in want.best]
    assert not page.errors, page.errors


def test_the_map_is_labelled_with_clusters_named_by_their_links(served, browser):
    server, _ = served
    page = open_page(browser, server.http_url, viewport={"width": 1280, "height": 1000})
    expect(page.locator("#map text.cluster-label")).to_have_count(8)
    named = page.evaluate("fetch('/explorer/map-clusters?sample=1500').then(r => r.json())")
    names = [c["name"] for c in named["clusters"]]
    assert page.locator("#map text.cluster-label").all_text_contents() == names
    assert all(part.startswith("Link ") for name in names for part in name.split(", ")), names
    expect(page.locator("#map-legend li")).to_have_count(8)
    # Every background dot wears its cluster's colour class.
    classes = page.locator("#map circle.bg").evaluate_all("dots => dots.map(d => d.getAttribute('class'))")
    assert len(classes) == 400 and all(any(f" c{c}" in k for c in range(8)) for k in classes)
    page.locator("#map-wrap").screenshot(path=SCREENSHOTS / "map-clusters.png")
    assert not page.errors, page.errors


def test_the_cluster_labels_keep_clear_of_the_selected_films_label(served, browser):
    """The film picked is the one under a cluster's label: its own label, up and right of its dot,
    would cover that label if the cluster labels did not move clear of it."""
    server, _ = served
    page = open_page(browser, server.http_url, viewport={"width": 1280, "height": 1000})
    expect(page.locator("#map text.cluster-label")).to_have_count(8)
    for label in page.locator("#map text.cluster-label").all()[:3]:
        box = label.bounding_box()
        nearest = page.evaluate("([x, y]) => { const dots = [...document.querySelectorAll('#map circle.bg')];"
                                " const d = (c) => { const b = c.getBoundingClientRect();"
                                " return (b.x + b.width / 2 - x) ** 2 + (b.y + b.height / 2 - y) ** 2; };"
                                " return dots.indexOf(dots.reduce((a, b) => d(a) <= d(b) ? a : b)); }",
                                [box["x"] + 4, box["y"] + box["height"] + 6])
        dot = page.locator("#map circle.bg").nth(nearest)
        under = dot.get_attribute("data-title")
        dot.click(force=True)
        expect(page.locator("#map-selected-label")).to_have_text(under)
        selected = page.locator("#map-selected-label").bounding_box()
        for other in page.locator("#map text.cluster-label").all():
            at = other.bounding_box()
            assert not (at["x"] < selected["x"] + selected["width"] and selected["x"] < at["x"] + at["width"]
                        and at["y"] < selected["y"] + selected["height"] and selected["y"] < at["y"] + at["height"]), \
                (under, other.text_content())
    assert not page.errors, page.errors


def test_the_selected_films_label_stays_inside_the_map(served, browser):
    """The film furthest right on the map has its label end left of its dot, not cut by the map's edge."""
    server, _ = served
    page = open_page(browser, server.http_url, viewport={"width": 1280, "height": 1000})
    expect(page.locator("#map text.cluster-label")).to_have_count(8)
    rightmost = page.evaluate("() => { const dots = [...document.querySelectorAll('#map circle.bg')];"
                              " const x = (c) => c.getBoundingClientRect().x;"
                              " return dots.indexOf(dots.reduce((a, b) => x(a) >= x(b) ? a : b)); }")
    dot = page.locator("#map circle.bg").nth(rightmost)
    title = dot.get_attribute("data-title")
    dot.click(force=True)
    expect(page.locator("#map-selected-label")).to_have_text(title)
    label, frame = page.locator("#map-selected-label").bounding_box(), page.locator("#map").bounding_box()
    assert frame["x"] <= label["x"] and label["x"] + label["width"] <= frame["x"] + frame["width"], (label, frame)
    assert not page.errors, page.errors


def add_link(page: Page, text: str) -> None:
    """Type a link name and press Enter with no suggestion highlighted, once the suggestions have come."""
    page.locator("#link-search").fill(text)
    page.locator("#link-search").press("Enter")


def test_films_like_a_set_of_links(served, browser):
    """Long because it is one person's session in the panel: each step starts from what the one before showed."""
    server, client = served
    page = open_page(browser, server.http_url, viewport={"width": 1280, "height": 1000})
    expect(page.locator("#about")).to_contain_text("400 movies")
    expect(page.locator("#links-message")).to_contain_text("Add a few links")

    # Keyboard only: the suggestions are link names (SearchNames kind LINKS); arrow down, Enter.
    page.locator("#link-search").focus()
    page.keyboard.type("link 1")
    expect(page.locator("#link-suggestions li").first).to_have_text("Link 1")
    assert all(name.startswith("Link ") for name in page.locator("#link-suggestions li").all_inner_texts())
    page.keyboard.press("ArrowDown")
    expect(page.locator("#link-search")).to_have_attribute("aria-activedescendant", "link-suggestion-0")
    page.keyboard.press("Enter")
    expect(page.locator("#link-set li")).to_have_count(1)
    expect(page.locator("#link-search")).to_have_value("")
    expect(page.locator("#link-films li")).to_have_count(10)
    # Typed, not picked: "link 7" is shown as the index spells it; an unknown name is kept, struck out and said.
    add_link(page, "link 7")
    add_link(page, "No Such Link")
    want = client.similar_to_links(["Link 1", "Link 7", "No Such Link"], k=10, reasons=4)
    assert want.unknown_links == ["No Such Link"] and want.neighbours
    expect(page.locator("#links-ignored")).to_have_text("Ignored, not links of this index: No Such Link")
    expect(page.locator("#link-set li.unknown")).to_have_count(1)
    assert page.locator("#link-set li").evaluate_all("items => items.map(i => i.dataset.link)") == \
        ["Link 1", "Link 7", "No Such Link"]
    page.wait_for_function("want => [...document.querySelectorAll('#link-films li')].map(li => li.dataset.title)"
                           ".join('\\n') === want", arg="\n".join(n.name for n in want.neighbours))
    # As a film's answer shows them: year, cosine, the shared links (here: links of the set the film has too).
    items = page.locator("#link-films li")
    assert items.locator(".year").all_inner_texts() == [str(n.year) if n.year else "year unknown" for n in want.neighbours]
    assert items.locator(".score").all_inner_texts() == [f"cosine {n.score:.3f}" for n in want.neighbours]
    chips = [item.locator(".shared .chip").all_inner_texts() for item in items.all()]
    assert chips == [[r.link for r in n.reasons] for n in want.neighbours] and any(chips)
    assert items.locator(".shared").count() == sum(1 for n in want.neighbours if n.reasons)  # no label over nothing
    expect(page.locator("#links-meaning")).to_be_visible()
    expect(page.locator("#links-message")).to_contain_text("10 films nearest to a film linking to these 2 links")
    page.screenshot(path=SCREENSHOTS / "desktop-links.png", full_page=True)

    # A name is text, never markup.
    add_link(page, "<img src=x onerror=\"window.pwned=1\">")
    expect(page.locator("#link-set li")).to_have_count(4)
    expect(page.locator("#link-set li").last).to_contain_text("<img src=x")
    assert page.locator("#links-panel img").count() == 0 and not page.evaluate("window.pwned")
    expect(page.locator("#link-set li.unknown")).to_have_count(2)

    # Clicking a film selects it, as anywhere else.
    first = want.neighbours[0].name
    page.locator("#link-films li button.title").first.click()
    expect(page.locator("#selected-title")).to_contain_text(first)

    # No known link left: said, and the previous answer goes.
    page.get_by_label("remove Link 1", exact=True).click()
    page.get_by_label("remove Link 7", exact=True).click()
    expect(page.locator("#links-message")).to_have_text(
        "None of these 2 links is known to the index, so there is no film to compare. Pick names from the suggestions.")
    expect(page.locator("#links-message")).to_have_class("error")
    expect(page.locator("#link-films li")).to_have_count(0)
    expect(page.locator("#links-meaning")).to_be_hidden()
    page.screenshot(path=SCREENSHOTS / "desktop-links-none-known.png", full_page=True)
    for left in (1, 0):  # each removal draws the set again
        page.locator("#link-set li button").first.click()
        expect(page.locator("#link-set li")).to_have_count(left)
    expect(page.locator("#links-message")).to_contain_text("Add a few links")
    assert not page.errors, page.errors


def test_films_like_links_at_phone_width(served, browser):
    server, client = served
    page = open_page(browser, f"{server.http_url}#movie=The%20Martian%20(film)", **PHONE)
    expect(page.locator("#neighbours li")).to_have_count(10)
    for name in ("Link 2", "Link 30", "Nothing Like It At All, Really Nothing"):
        add_link(page, name)
    expect(page.locator("#link-films li")).to_have_count(10)
    expect(page.locator("#links-ignored")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # After the map: the recommendations stay right under the neighbours whose boxes drive them.
    assert page.locator("#links-heading").bounding_box()["y"] > page.locator("#map-heading").bounding_box()["y"]
    page.locator("#links-panel").screenshot(path=SCREENSHOTS / "phone-links.png")
    assert not page.errors, page.errors
