"""How often a title typed another way resolves to another film: the figures in server/titles.py.

    python -m bench.title_resolution [--sample 400] [--seeds 0 1]

Queries are vega-movies titles (IMDb spellings, with a release date), resolved against
the 36k catalogue (../shared/data/wp_movies_us.ndjson) as the server resolves them; a
resolved film whose release year is more than 1 from the query's counts as another film.
For each query that is asked about (NOT_FOUND) it also says what a plain close match
would have answered (the best close spelling, when it is clearly the best), to measure
what asking saves.
"""
from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path

from movielinks.common.records import release_year
from movielinks.server.errors import ServiceError
from movielinks.server.titles import TitleResolver

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=400, help="queries per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    names, weights, years = [], [], []
    with open(DATA / "wp_movies_us.ndjson", encoding="utf-8") as lines:
        for line in lines:
            title, infobox, links, *_ = json.loads(line)
            names.append(title)
            weights.append(len(set(links)))
            years.append(release_year(infobox or {}))
    resolver = TitleResolver(names, weights=weights)
    films = [m for m in json.loads((DATA / "vega-movies" / "movies.json").read_text()) if m["Title"] and m["Release Date"]]
    answered, other_film, would_close, would_close_other = Counter(), Counter(), 0, 0
    for seed in args.seeds:
        for film in random.Random(seed).sample(films, args.sample):
            query, year = str(film["Title"]), int(film["Release Date"][-4:])
            try:
                found, match, _ = resolver.lookup(query)
            except ServiceError:
                answered["asked (NOT_FOUND)"] += 1
                close = resolver._close(query.strip().casefold(), 2)
                if len(close) == 1 or (len(close) == 2 and close[0][1] - close[1][1] > 0.05):
                    would_close += 1
                    would_close_other += bool(years[close[0][0]] and abs(years[close[0][0]] - year) > 1)
                continue
            answered[match] += 1
            other_film[match] += bool(years[found] and abs(years[found] - year) > 1)
    total = args.sample * len(args.seeds)
    print(f"{total} queries (seeds {', '.join(map(str, args.seeds))}), by how they resolved; another film by year:")
    for match, n in answered.most_common():
        print(f"  {match:<20} {n:>4}   another film: {other_film[match]}")
    print(f"asked, where a plain close match would have answered: {would_close}, of which another film: "
          f"{would_close_other}")


if __name__ == "__main__":
    main()
