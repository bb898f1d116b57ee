"""Collector speed on a generated multistream dump, against bz2 decompression alone of the same file.

    python -m bench.bench_collector [--mb 200] [--work /tmp/movielinks-bench-collector]

Writes (once; later runs reuse it) a multistream pages-articles dump of at least
`--mb` compressed megabytes and its index, shaped like a real one: about a third of
the pages are redirects, 3% are films (Infobox film), a few are look-alikes
(Infobox film festival), the rest are other articles with templates and links.
Then, in the same run:

1. unit by unit (8 MB of streams each): the floor, bz2 decompression alone of the unit's
   streams, then the collector's whole work on the same unit, both on this core;
2. `collect` with one worker (this process), merge, redirects and writing included;
3. `collect` with a two-worker Dask LocalCluster (cluster start included);
4. bz2 decompression alone in one process, then in two at once (what the machine's cores allow);

and prints compressed MB/s per core, the fraction of the floor, and the 2-worker speedup.

    python -m bench.bench_collector --redirect-auc

instead measures what resolving redirects changes on the trainer's held-out AUC: a
generated dump where films link to people of their own group under several spellings
(redirect pages), collected with and without resolution, each trained with the
trainer's defaults (`trainer train`).

Run it from the project root as a module: it reuses the tests' dump writer (tests/).
"""
from __future__ import annotations

import argparse
import bz2
import json
import multiprocessing
import os
import random
import subprocess
import sys
import time
from pathlib import Path


from movielinks.collector import xmldump  # noqa: E402
from movielinks.collector.collect import collect  # noqa: E402
from tests.collector_fixtures import FOOTER, HEADER, page, write_multistream  # noqa: E402

PAGES_PER_STREAM = 100
FILM_SHARE, REDIRECT_SHARE, LOOKALIKE_SHARE = 0.03, 0.33, 0.002


def _words(rng: random.Random, n: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(n)]


class _Generator:
    """Deterministic page texts: stream number -> the XML of its 100 pages."""

    def __init__(self, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.vocabulary = _words(rng, 4000)
        self.people = [f"{a.title()} {b.title()}" for a, b in zip(_words(rng, 30000), _words(rng, 30000))]
        self.topics = [w.title() + " " + v for w, v in zip(_words(rng, 20000), _words(rng, 20000))]

    def stream(self, number: int) -> bytes:
        rng = random.Random(number)
        parts = []
        for i in range(PAGES_PER_STREAM):
            page_id = number * PAGES_PER_STREAM + i + 1
            roll = rng.random()
            redirect = None
            if roll < REDIRECT_SHARE:
                title = f"{rng.choice(self.people)} ({page_id})"
                redirect = rng.choice(self.people)
                text = f"#REDIRECT [[{redirect}]] {{{{R from alternative name}}}}"
            elif roll < REDIRECT_SHARE + FILM_SHARE:
                title, text = f"Film {page_id} (film)", self._film(rng)
            elif roll < REDIRECT_SHARE + FILM_SHARE + LOOKALIKE_SHARE:
                title, text = f"Festival {page_id}", "{{Infobox film festival\n| name = X\n}}" + self._prose(rng, 200)
            else:
                title, text = f"Article {page_id}", self._article(rng)
            redirect_tag = f'    <redirect title="{redirect}" />\n' if redirect else ""
            parts.append(f"  <page>\n    <title>{title}</title>\n    <ns>0</ns>\n    <id>{page_id}</id>\n"
                         f"{redirect_tag}    <revision>\n      <id>{page_id}0</id>\n"
                         f'      <text bytes="{len(text)}" xml:space="preserve">{text}</text>\n'
                         f"    </revision>\n  </page>\n")
        return "".join(parts).encode("utf-8")

    def _prose(self, rng: random.Random, n_words: int, link_every: int = 12) -> str:
        words = rng.choices(self.vocabulary, k=n_words)
        for i in range(0, n_words, link_every):
            words[i] = f"[[{rng.choice(self.topics)}]]"
        return " ".join(words)

    def _article(self, rng: random.Random) -> str:
        infobox = f"{{{{Infobox person\n| name = {rng.choice(self.people)}\n| birth_place = [[{rng.choice(self.topics)}]]\n}}}}\n"
        paragraphs = [self._prose(rng, rng.randint(60, 220)) for _ in range(rng.randint(3, 12))]
        refs = "".join(f"<ref>{{{{cite web|title={rng.choice(self.vocabulary)}|publisher=[[{rng.choice(self.topics)}]]}}}}</ref>"
                       for _ in range(rng.randint(1, 6)))
        return infobox + "\n\n".join(paragraphs) + refs + f"\n[[Category:{rng.choice(self.topics)}]]"

    def _film(self, rng: random.Random) -> str:
        cast = "".join(f"\n* [[{rng.choice(self.people)}]]" for _ in range(rng.randint(2, 8)))
        infobox = (f"{{{{Infobox film\n| name = Film\n| director = [[{rng.choice(self.people)}]]\n"
                   f"| starring = {{{{Plainlist|{cast}\n}}}}\n| budget = ${rng.randint(1, 300)} million\n}}}}\n")
        paragraphs = [self._prose(rng, rng.randint(80, 250), link_every=8) for _ in range(rng.randint(4, 12))]
        rt = f"On [[Rotten Tomatoes]], the film holds an approval rating of {rng.randint(5, 99)}% based on 100 reviews."
        return infobox + "\n\n".join(paragraphs) + "\n\n" + rt + "\n[[Category:Films]]"


_GENERATOR: _Generator | None = None


def _compressed_stream(number: int) -> bytes:
    global _GENERATOR
    if _GENERATOR is None:
        _GENERATOR = _Generator()
    return bz2.compress(_GENERATOR.stream(number), 9)


def generate(dump: Path, target_bytes: int) -> Path:
    """Write the dump and its -index.txt.bz2 (titles in the index are not needed by the collector)."""
    index = dump.with_name(dump.name.removesuffix(".xml.bz2") + "-index.txt.bz2")
    staging = dump.with_name(dump.name + ".partial")
    offsets = []
    batch = 64
    with open(staging, "wb") as out, multiprocessing.Pool(2) as pool:
        out.write(bz2.compress(HEADER.encode("utf-8")))
        first = 0
        while out.tell() < target_bytes:
            for data in pool.map(_compressed_stream, range(first, first + batch)):
                offsets.append(out.tell())
                out.write(data)
            first += batch
        out.write(bz2.compress(FOOTER.encode("utf-8")))
    lines = "".join(f"{offset}:{n * PAGES_PER_STREAM + i + 1}:page\n"
                    for n, offset in enumerate(offsets) for i in range(PAGES_PER_STREAM))
    index.write_bytes(bz2.compress(lines.encode("utf-8")))
    staging.rename(dump)
    return index


def paired_floor(dump: Path) -> tuple[float, float, float, float]:
    """Unit by unit, bz2 decompression alone then the collector's work on the same unit, on this core.

    Returns (floor wall s, floor CPU s, collector wall s, collector CPU s) summed over the units.
    Pairing them keeps both halves under the same load from other processes.
    """
    namespaces = xmldump.read_namespaces(dump)
    totals = [0.0, 0.0, 0.0, 0.0]

    for number, unit in enumerate(xmldump.plan(dump)):
        # Which half goes first alternates: the second finds the unit's bytes in the caches.
        halves = [(0, _decompress_unit), (2, lambda u: xmldump.collect_unit(u, namespaces))]
        for slot, work in halves if number % 2 == 0 else halves[::-1]:
            wall, cpu = time.perf_counter(), time.process_time()
            work(unit)
            totals[slot] += time.perf_counter() - wall
            totals[slot + 1] += time.process_time() - cpu
    return tuple(totals)


def _decompress_unit(unit: xmldump.Streams) -> None:
    with open(unit.path, "rb") as f:
        for start, end in unit.spans:
            f.seek(start)
            bz2.BZ2Decompressor().decompress(f.read(end - start))


def floor_scaling(dump: Path) -> tuple[float, float]:
    """Wall seconds of bz2 decompression alone of every unit: in 1 process, then in 2 at once.

    What two processes gain on this machine's cores with nothing of the collector's in the way.
    """
    units = xmldump.plan(dump)
    started = time.perf_counter()
    for unit in units:
        _decompress_unit(unit)
    one_s = time.perf_counter() - started
    with multiprocessing.Pool(2) as pool:
        started = time.perf_counter()
        pool.map(_decompress_unit, units, chunksize=1)
        two_s = time.perf_counter() - started
    return one_s, two_s


def redirect_auc(work: Path, films: int = 4000, groups: int = 40, people_per_group: int = 75,
                 links_per_film: int = 25, seed: int = 3) -> None:
    """Held-out AUC of the trainer on one generated dump, collected with and without redirect resolution."""
    rng = random.Random(seed)
    people = [[f"Person {g}-{i}" for i in range(people_per_group)] for g in range(groups)]
    spellings = {p: [p] + [f"{p} (alias {k})" for k in range(rng.randint(0, 3))] for group in people for p in group}
    pages = [page(alias, f"#REDIRECT [[{p}]]", redirect=p, page_id=1 + n)
             for n, (p, aliases) in enumerate(spellings.items()) for alias in aliases[1:]]
    for f in range(films):
        group = people[f % groups]
        cast = [rng.choice(group) if rng.random() < 0.8 else rng.choice(rng.choice(people))
                for _ in range(links_per_film)]
        body = " ".join(f"[[{rng.choice(spellings[p])}]]" for p in cast)
        pages.append(page(f"Film {f}", f"{{{{Infobox film\n| name = Film {f}\n}}}}\n{body}", page_id=10 ** 6 + f))
    rng.shuffle(pages)
    dump, _index = write_multistream(work / "aucwiki-20261101-pages-articles-multistream.xml.bz2", pages, 100)
    for resolve in (True, False):
        name = "resolved" if resolve else "as-written"
        summary = collect(dump, work / f"auc-{name}.ndjson", workers=1, resolve=resolve)
        run = work / f"auc-run-{name}-{int(time.time())}"
        subprocess.run([sys.executable, "-m", "movielinks.trainer", "train", "--data", str(work / f"auc-{name}.ndjson"),
                        "--out", str(run)], check=True, capture_output=True)
        shown = subprocess.run([sys.executable, "-m", "movielinks.trainer", "evaluate", str(run), "--json"], check=True,
                               capture_output=True, text=True)
        metrics = json.loads(shown.stdout)
        print(f"| {name} | {summary.films:,} | {len({l for r in _records(work / f'auc-{name}.ndjson') for l in r[2]}):,} "
              f"| {summary.links_resolved:,} | {metrics['link_auc']:.4f} | {metrics.get('recall_at_10', float('nan')):.4f} |")


def _records(path: Path) -> list[list]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=200.0, help="compressed size of the generated dump")
    parser.add_argument("--work", default="/tmp/movielinks-bench-collector")
    parser.add_argument("--redirect-auc", action="store_true", help="measure redirect resolution on held-out AUC")
    parser.add_argument("--floor-scaling", action="store_true",
                        help="only step 4: bz2 decompression alone in 1 and in 2 processes")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.redirect_auc:
        print("| links | films | distinct links | links resolved | held-out AUC | recall@10 |")
        print("|---|---|---|---|---|---|")
        redirect_auc(work)
        return
    dump = work / f"benchwiki-{int(args.mb)}mb-pages-articles-multistream.xml.bz2"
    index = dump.with_name(dump.name.removesuffix(".xml.bz2") + "-index.txt.bz2")
    if not (dump.is_file() and index.is_file()):
        started = time.perf_counter()
        generate(dump, int(args.mb * (1 << 20)))
        print(f"generated {dump} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    mb = dump.stat().st_size / (1 << 20)
    if args.floor_scaling:
        floor_one_s, floor_two_s = floor_scaling(dump)
        print(f"{mb:.1f} MB: bz2 decompression alone in 1 process / 2 processes at once: {floor_one_s:.1f} s / "
              f"{floor_two_s:.1f} s, {floor_one_s / floor_two_s:.2f}x")
        return

    # Wall time on a shared machine counts the waits for a core; CPU time of this process
    # does not, so the one-core comparison is made on both, unit by unit.
    floor_s, floor_cpu, units_s, units_cpu = paired_floor(dump)
    runs = {}
    for workers in (1, 2):
        started = time.perf_counter()
        summary = collect(dump, work / f"films-{workers}.ndjson", workers=workers)
        runs[workers] = (time.perf_counter() - started, summary)
    same = (work / "films-1.ndjson").read_bytes() == (work / "films-2.ndjson").read_bytes()

    one_s, summary = runs[1]
    two_s, _ = runs[2]
    print(f"dump: {mb:.1f} MB compressed, {summary.pages:,} pages, {summary.films:,} films, "
          f"{summary.redirects:,} redirects, {summary.links:,} links; skipped: {summary.skipped}")
    print(f"load average (1, 5, 15 min) at the end: {os.getloadavg()}")
    print("| measurement | wall s | CPU s | compressed MB/s per core (wall) | vs. floor (wall) | vs. floor (CPU) |")
    print("|---|---|---|---|---|---|")
    print(f"| bz2 decompression alone (the floor), unit by unit, 1 core | {floor_s:.1f} | {floor_cpu:.1f} | "
          f"{mb / floor_s:.2f} | 100% | 100% |")
    print(f"| collector's work on the same units, 1 core | {units_s:.1f} | {units_cpu:.1f} | {mb / units_s:.2f} | "
          f"{floor_s / units_s:.0%} | {floor_cpu / units_cpu:.0%} |")
    print(f"| `collect`, 1 worker (merge, redirects, write included) | {one_s:.1f} | | {mb / one_s:.2f} | "
          f"{floor_s / one_s:.0%} | |")
    print(f"| `collect`, 2-worker Dask LocalCluster (start included) | {two_s:.1f} | | {mb / two_s / 2:.2f} | "
          f"{floor_s / two_s / 2:.0%} | |")
    print(f"2-worker speedup (wall, `collect` 1 worker / 2 workers): {one_s / two_s:.2f}x; "
          f"outputs byte-identical: {same}")
    floor_one_s, floor_two_s = floor_scaling(dump)
    print(f"bz2 decompression alone in 1 process / 2 processes at once: {floor_one_s:.1f} s / {floor_two_s:.1f} s, "
          f"{floor_one_s / floor_two_s:.2f}x (what two processes can gain on this machine)")

if __name__ == "__main__":
    main()
