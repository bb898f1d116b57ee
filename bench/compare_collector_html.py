"""The collector on the 1,278 saved Oscar-film pages against wp_movies_oscars.ndjson (an independent script's output).

    python bench/compare_collector_html.py [--data ../shared/data]

Runs `collect` on oscar-movies-html.tar.gz (every page kept: the collection was picked
by hand), then compares film by film with the reference built from the same pages by
../shared/data/build_wp_movies_oscars.py: the Jaccard overlap of the two link sets,
infobox and rating agreement, and the films whose links differ most, with the links
that make the difference.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path


from movielinks.collector.collect import collect  # noqa: E402


def read(path: Path) -> dict[str, list]:
    with open(path, encoding="utf-8") as f:
        return {record[0]: record for record in map(json.loads, f)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    data = Path(args.data)
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "oscars.ndjson"
        summary = collect(data / "oscar-movies-html.tar.gz", out, workers=args.workers, every_page=True)
        mine = read(out)
    reference = read(data / "wp_movies_oscars.ndjson")
    common = sorted(set(mine) & set(reference))
    overlaps = {}
    for title in common:
        a, b = set(mine[title][2]), set(reference[title][2])
        overlaps[title] = len(a & b) / len(a | b) if a | b else 1.0
    only_mine = [link for t in common for link in set(mine[t][2]) - set(reference[t][2])]
    only_ref = [link for t in common for link in set(reference[t][2]) - set(mine[t][2])]
    print(f"records: {len(mine):,} (reference {len(reference):,}, in both {len(common):,}); "
          f"{summary.links:,} links, {summary.seconds:.1f} s")
    values = list(overlaps.values())
    print(f"link-set Jaccard per film: mean {statistics.mean(values):.4f}, median {statistics.median(values):.4f}, "
          f"min {min(values):.4f}; identical sets: {sum(v == 1.0 for v in values):,} films")
    print(f"distinct (film, link) pairs only in the collector: {len(only_mine):,} "
          f"({sum(':' in link for link in only_mine):,} of them titles with a colon, which the reference drops); "
          f"only in the reference: {len(only_ref):,}")
    print(f"infobox identical: {sum(mine[t][1] == reference[t][1] for t in common):,}; Rotten Tomatoes percent "
          f"identical: {sum(mine[t][3] == reference[t][3] for t in common):,}; x/10 rating identical: "
          f"{sum(mine[t][4] == reference[t][4] for t in common):,} (collector finds "
          f"{sum(mine[t][3] is not None for t in common)} percents and {sum(mine[t][4] is not None for t in common)} "
          f"ratings, the reference {sum(reference[t][3] is not None for t in common)} and "
          f"{sum(reference[t][4] is not None for t in common)})")
    print("\nfilms that differ most:")
    for title in sorted(common, key=overlaps.get)[:8]:
        extra = sorted(set(mine[title][2]) - set(reference[title][2]))
        missing = sorted(set(reference[title][2]) - set(mine[title][2]))
        print(f"- {title}: Jaccard {overlaps[title]:.3f}; {len(extra)} links only in the collector "
              f"(e.g. {', '.join(extra[:4])}), {len(missing)} only in the reference")


if __name__ == "__main__":
    main()
