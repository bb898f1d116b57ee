"""The collector: the pipeline's first stage, Wikipedia dumps or saved pages in, film records out.

    collector collect DUMP --out films.ndjson      (then: trainer train --data films.ndjson)

- record.py: the artifact (one film record a line, the trainer's format) and the problems a page can have
- links.py: link targets normalised as MediaWiki does; which namespaces are kept
- wikitext.py: a film record from wikitext (mwparserfromhell), and the cheap test before parsing
- xmldump.py: pages-articles XML dumps, split by multistream blocks or byte ranges
- htmlpages.py: saved pages, rendered or Parsoid HTML, from a directory or a tarball
- engine.py: local cores or a Dask cluster, results in input order
- collect.py: plan, run, merge, resolve redirects, write atomically
- fetch.py: `collector fetch WIKI DATE`
"""
