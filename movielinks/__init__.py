"""movielinks: movie similarity and recommendation from Wikipedia's outgoing links.

The stages live in the repository's top-level folders and are installed under this
one import name (pyproject.toml maps them): movielinks.collector, .trainer,
.indexer, .server, .client, with .common and .proto shared.
"""
