"""client: the Python client library and the `client` command for the movielinks service.

    from movielinks.client import MovielinksClient
    with MovielinksClient("127.0.0.1:50051") as movielinks:
        movielinks.similar_movies("Interstellar (film)", k=10)

Imports neither TensorFlow nor the trainer, indexer or server.
"""
from movielinks.client.client import ClientError, MovielinksClient

__all__ = ["ClientError", "MovielinksClient"]
