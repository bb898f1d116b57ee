"""The README's picture of the web explorer, taken in a real browser against a real index.

    python scripts/explorer_screenshot.py --index work/index [--movie "The Dark Knight"] [--out docs/explorer.png]

Starts the server (gRPC and the HTTP gateway on free loopback ports), opens the
explorer in Debian's chromium (Playwright), asks for the movie, likes two of its
neighbours so that recommendations show, and saves the first screen. The server is
stopped at the end.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]

from tests.e2e_server import running_server  # noqa: E402
from tests.e2e.test_explorer_browser import CHROMIUM, CHROMIUM_FLAGS, WAIT_MS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True, help="index root (`indexer build --out`)")
    parser.add_argument("--movie", default="The Dark Knight")
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
        page.locator("#map circle.bg").nth(40).hover(force=True)
        page.screenshot(path=args.out)
        browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
