"""indexer: turns a training run into a published, versioned FAISS index.

The artifact it publishes is described once, in `indexer.version`, the only module
the server imports from here.
"""
