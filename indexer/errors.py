"""The indexer's one error type."""


class IndexerError(Exception):
    """A problem the user can act on: a bad run, factory, path or argument; an index root or
    version that is missing, incomplete, corrupt or inconsistent."""
