"""Synthetic film datasets at any size, with structure planted so that quality stays measurable.

    trainer synth --preset notebook --out films.ndjson        # ~ the notebook's 10k-film file
    trainer synth --films 1000000 --links-per-film 30 --out big.ndjson.gz

Each film belongs to one or two latent topics (think genre x era x country). Its
links are drawn mostly from its topics' link pools, the rest from the whole link
universe; both draws follow a power law (a few links, like "Drama" or "United
States", are everywhere, most are rare), as real articles' links do. Films that
share a topic share links, so a good model puts them close: `topic_of(title)`
recovers a film's topic from its title for evaluation.

Output is the trainer's ndjson record format, written a block of films at a time
(memory stays flat whatever the size), deterministic for a seed, and atomic.
"""
from __future__ import annotations

import dataclasses
import gzip
import io
import json
import re
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from movielinks.common.files import atomic_file

BLOCK_FILMS = 10_000
_TITLE = re.compile(r"^Synthetic film \d+ \(topic (\d+)\)$")


@dataclasses.dataclass(frozen=True)
class SynthSpec:
    """What to generate. The defaults are the notebook preset's shape."""

    films: int = 10_000
    links_per_film: float = 97.5  # drawn, repeats included: about 95 distinct
    topics: int = 0  # 0: one topic per 100 films (at least 8)
    topic_share: float = 0.6  # fraction of a film's links drawn from its topics' pools
    universe_per_pair: float = 0.8  # link names in the universe per (film, link) pair drawn
    pool_size: int = 0  # links in one topic's pool; 0: each is drawn about `pool_draws` times
    pool_draws: float = 8.0
    zipf_exponent: float = 0.7  # popularity over the whole link universe
    pool_exponent: float = 0.3  # popularity inside a topic's pool
    seed: int = 0

    @property
    def n_topics(self) -> int:
        return self.topics or max(8, self.films // 100)

    @property
    def n_pool(self) -> int:
        films_per_topic = self.films / self.n_topics
        return self.pool_size or max(50, round(films_per_topic * self.links_per_film * self.topic_share / self.pool_draws))

    @property
    def universe(self) -> int:
        return max(self.n_pool * 4, int(self.films * self.links_per_film * self.universe_per_pair))


PRESETS = {
    # The notebook's wp_movies_10k.ndjson: 10,000 films, about 95 distinct links a film,
    # ~950k (film, link) pairs, ~67k links in 3 or more films (the defaults were fitted to it).
    "notebook": SynthSpec(),
    # A million films x ~30 links; each topic link drawn ~20 times, so ~1M links are kept.
    "1m": SynthSpec(films=1_000_000, links_per_film=30.0, pool_draws=20.0),
}


def topic_of(title: str) -> int | None:
    """The planted topic of a synthetic film, read from its title; None for another title."""
    match = _TITLE.match(title)
    return int(match.group(1)) if match else None


def generate(spec: SynthSpec) -> Iterator[list]:
    """The records of `spec`, in order, a block at a time; deterministic for `spec.seed`."""
    rng = np.random.default_rng([spec.seed, 0x5F17])
    universe_cdf = _power_law_cdf(spec.universe, spec.zipf_exponent)
    pools = np.searchsorted(universe_cdf, rng.random((spec.n_topics, spec.n_pool)))
    pool_cdf = _power_law_cdf(spec.n_pool, spec.pool_exponent)
    for start in range(0, spec.films, BLOCK_FILMS):
        block = np.random.default_rng([spec.seed, start])
        yield from _block(block, spec, start, min(BLOCK_FILMS, spec.films - start), universe_cdf, pools, pool_cdf)


def _block(rng: np.random.Generator, spec: SynthSpec, start: int, n: int, universe_cdf: np.ndarray,
           pools: np.ndarray, pool_cdf: np.ndarray) -> Iterator[list]:
    topics = rng.integers(0, spec.n_topics, (n, 2))
    second = rng.random(n) < 0.3  # most films have one topic, some two
    counts = np.maximum(1, rng.poisson(spec.links_per_film, n))
    from_topic = rng.binomial(counts, spec.topic_share)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    picks = np.empty(offsets[-1], dtype=np.int64)
    # Topic links: a power-law rank inside the topic's pool, from the first or second topic.
    n_topic = int(from_topic.sum())
    owner = np.repeat(np.arange(n), from_topic)
    which = np.where(second[owner] & (rng.random(n_topic) < 0.5), topics[owner, 1], topics[owner, 0])
    topic_links = pools[which, np.searchsorted(pool_cdf, rng.random(n_topic))]
    other_links = np.searchsorted(universe_cdf, rng.random(offsets[-1] - n_topic))
    is_topic = np.arange(offsets[-1]) - offsets[:-1].repeat(counts) < from_topic.repeat(counts)
    picks[is_topic], picks[~is_topic] = topic_links, other_links
    years = 1930 + (topics[:, 0] * 7) % 90 + rng.integers(0, 5, n)
    gross = np.exp(rng.normal(16.5 + (topics[:, 0] % 5) * 0.4, 1.0, n))
    rated = rng.random(n) < 0.3
    rotten = np.clip(rng.normal(40 + (topics[:, 0] % 7) * 7, 15, n), 0, 100).round()
    for i in range(n):
        links = [f"Link {j}" for j in picks[offsets[i] : offsets[i + 1]].tolist()]
        infobox = {"name": f"Synthetic film {start + i}", "released": str(int(years[i])),
                   "gross": f"${gross[i] / 1e6:.1f} million"}
        yield [f"Synthetic film {start + i} (topic {int(topics[i, 0])})", infobox, links,
               f"{int(rotten[i])}%" if rated[i] else None, None]


def _power_law_cdf(n: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def write(spec: SynthSpec, out: str | Path, *, progress: bool = True) -> Path:
    """Write `spec`'s records to `out` (.ndjson, or .ndjson.gz compressed), atomically; return `out`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as raw, tqdm(total=spec.films, unit="film", desc="synth", disable=not progress) as bar:
        binary = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if out.suffix == ".gz" else raw
        text = io.TextIOWrapper(binary, encoding="utf-8", newline="\n")
        for i, record in enumerate(generate(spec), 1):
            text.write(json.dumps(record, ensure_ascii=False) + "\n")
            if i % BLOCK_FILMS == 0 or i == spec.films:
                bar.update(i - bar.n)
        text.flush()
        text.detach()
        if binary is not raw:
            binary.close()
    return out
