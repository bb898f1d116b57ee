"""The README's picture of the web explorer, taken in a real browser against a real index.

    python scripts/explorer_screenshot.py --index work/index [--movie "The Dark Knight"]
        [--links "Christopher Nolan" "Michael Caine" "Science Fiction"] [--out docs/explorer.png]

Starts the server (gRPC and the HTTP gateway on free loopback ports), opens the
explorer in Debian's chromium (Playwright), asks for the movie, likes two of its
neighbours so that recommendations show, adds the links to the "films like a set of
links" panel (each must be a link of the index: `client links --search TEXT`), and
saves the whole page. The server is stopped at the end.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python scripts/explorer_screenshot.py` puts scripts/ on the path, not the checkout

from tests.e2e_server import running_server  # noqa: E402
from tests.e2e.test_explorer_browser import CHROMIUM, CHROMIUM_FLAGS, WAIT_MS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True, help="index root (`indexer build --out`)")
    parser.add_argument("--movie", default="The Dark Knight")
    parser.add_argument("--links", nargs="+", default=["Christopher Nolan", "Michael Caine", "Science Fiction"],
                        metavar="LINK", help="links for the films-like-links panel (default: %(default)s)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "explorer.png"))
    args = parser.parse_args()
    with running_server(Path(args.index), "--http-port", "0") as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = browser.new_context(viewport={"width": 1060, "height": 920}).new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(server.http_url)
        page.locator("#search").fill(args.movie)
        page.locator("#search").press("Escape")
        page.locator("#search").press("Enter")
        expect(page.locator("#neighbours li")).to_have_count(10)
        for item in page.locator("#neighbours li").all()[:3:2]:  # like the first and the third
            item.locator("input[type=checkbox]").first.check()
        expect(page.locator("#recommendations li").first).to_be_visible()
        _add_links(page, args.links)
        _hover_a_dot_clear_of_labels(page)
        page.screenshot(path=args.out, full_page=True)  # the links panel is under the neighbours
        browser.close()
    print(f"wrote {args.out}")


def _add_links(page, links: list[str]) -> None:
    """Each link typed and entered in the links panel, then its films shown with every link known."""
    for link in links:
        page.locator("#link-search").fill(link)
        page.locator("#link-search").press("Enter")
        expect(page.locator(f'#link-set li.chip[data-link="{link}"]')).to_be_visible()
    expect(page.locator("#links-message")).to_contain_text(f"these {len(links)} links" if len(links) > 1
                                                           else "this link")
    expect(page.locator("#link-films li")).to_have_count(10)
    expect(page.locator("#link-set li.chip.unknown")).to_have_count(0)  # each link known to the index
    page.locator("#link-search").blur()


def _hover_a_dot_clear_of_labels(page) -> None:
    """Hover a background dot of the map whose title box hides none of the map's labels and stays inside it."""
    expect(page.locator("#map-selected-label")).to_be_visible()  # the map drawn for the page as it is
    labels = [page.locator("#map text").nth(i).bounding_box() for i in range(page.locator("#map text").count())]
    area = page.locator("#map-wrap").bounding_box()
    dots = page.locator("#map circle.bg")
    for i in range(40, dots.count(), 7):
        dots.nth(i).hover(force=True)
        tip = page.locator("#map-hover").bounding_box()
        if tip and _inside(tip, area) and not any(_overlap(tip, label) for label in labels if label):
            return
    raise SystemExit("no dot of the map has a title box clear of the labels")


def _inside(a: dict, b: dict) -> bool:
    return b["x"] <= a["x"] and a["x"] + a["width"] <= b["x"] + b["width"] and b["y"] <= a["y"]


def _overlap(a: dict, b: dict) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


if __name__ == "__main__":
    main()
