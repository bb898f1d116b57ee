"""`python -m indexer`: the same as the `indexer` command."""
from movielinks.indexer.cli import main

raise SystemExit(main())
