"""`collector fetch WIKI DATE`: the multistream pages-articles dump and its index, verified.

Both files are checked against the SHA-1 the dump publishes in
`<wiki>-<date>-sha1sums.txt`; downloads resume where they were cut off and a file
is under its final name only once verified (common/download.py).

    <cache>/dumps/<wiki>/<date>/<wiki>-<date>-pages-articles-multistream.xml.bz2
    <cache>/dumps/<wiki>/<date>/<wiki>-<date>-pages-articles-multistream-index.txt.bz2
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from movielinks.common.download import BASE_URL_ENV, DownloadError, Expected, download_verified, fetch_bytes, locked, sha1_file
from movielinks.common.files import atomic_write_bytes

from movielinks.collector.record import CollectorError

CACHE_ENV = "MOVIELINKS_CACHE"
DEFAULT_CACHE = "~/.cache/movielinks"
DEFAULT_BASE_URL = "https://dumps.wikimedia.org"
_WIKI = re.compile(r"[a-z][a-z0-9_]*wiki[a-z]*")
_DATE = re.compile(r"\d{8}|latest")
_MIRROR_HINT = "a mirror keeps the dumps' <wiki>/<date>/<file> layout"


def dump_file_names(wiki: str, date: str) -> tuple[str, str, str]:
    """The multistream dump, its index and the checksum list, as the dump names them."""
    prefix = f"{wiki}-{date}"
    return (f"{prefix}-pages-articles-multistream.xml.bz2", f"{prefix}-pages-articles-multistream-index.txt.bz2",
            f"{prefix}-sha1sums.txt")


def parse_sha1sums(text: str) -> dict[str, str]:
    """File name -> SHA-1 from a `sha1sum` listing ("<40 hex>  <name>" a line)."""
    sums = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and re.fullmatch(r"[0-9a-f]{40}", parts[0]):
            sums[parts[1].lstrip("*")] = parts[0]
    return sums


def fetch_dump(wiki: str, date: str, cache_dir: str | Path | None = None, base_url: str | None = None,
               progress: bool = True) -> tuple[Path, Path]:
    """Download (or resume, or find verified in the cache) a wiki's multistream dump and index; return both paths.

    The cache is `cache_dir`, else $MOVIELINKS_CACHE, else ~/.cache/movielinks; files come from
    `base_url`, else $MOVIELINKS_FETCH_BASE_URL, else dumps.wikimedia.org. Raises CollectorError.
    """
    if not _WIKI.fullmatch(wiki):
        raise CollectorError(f"{wiki!r} is not a wiki name such as enwiki, dewiki or frwiki")
    if not _DATE.fullmatch(date):
        raise CollectorError(f"{date!r} is not a dump date such as 20261101 (YYYYMMDD) or latest")
    cache = Path(cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()
    base_url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
    directory = cache / "dumps" / wiki / date
    dump_name, index_name, sums_name = dump_file_names(wiki, date)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with locked(directory / ".fetch.lock"):
            sums_bytes = fetch_bytes(f"{base_url}/{wiki}/{date}/{sums_name}", _MIRROR_HINT)
            sums = parse_sha1sums(sums_bytes.decode("utf-8", "replace"))
            atomic_write_bytes(directory / sums_name, sums_bytes)
            for name in (dump_name, index_name):
                if name not in sums:
                    raise CollectorError(f"{base_url}/{wiki}/{date}/{sums_name} lists no SHA-1 for {name}; the "
                                         f"dump of {date} may not be finished yet: try an earlier date")
                expected = Expected(sums[name], "SHA-1", sha1_file, f"collector fetch {wiki} {date}", _MIRROR_HINT)
                download_verified(f"{base_url}/{wiki}/{date}/{name}", directory / name, expected, progress)
    except DownloadError as e:
        raise CollectorError(str(e)) from e
    except OSError as e:
        raise CollectorError(f"cannot write into the cache {directory}: {e}; pass another with --cache or "
                             f"${CACHE_ENV}") from e
    return directory / dump_name, directory / index_name
