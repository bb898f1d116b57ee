"""The collector: the pipeline's first stage, Wikipedia dumps or saved pages in, film records out.

    collector collect DUMP --out films.ndjson      (then: trainer train --data films.ndjson)

- record.py: what a unit of work finds and the problems a page can have (the film record itself,
  the trainer's format, is common/film_record.py)
- links.py: link targets normalised as MediaWiki does; which namespaces are kept
- wikitext.py: a film record from wikitext (mwparserfromhell), and the cheap test before parsing
- xmldump.py: pages-articles XML dumps, split by multistream blocks or byte ranges
- htmlpages.py: saved pages, rendered or Parsoid HTML, from a directory or a tarball
- engine.py: local cores or a Dask cluster, results in input order
- collect.py: plan, run, merge, resolve redirects, write atomically
- fetch.py: `collector fetch WIKI DATE`
"""
