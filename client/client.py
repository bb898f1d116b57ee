"""MovielinksClient: one typed method per RPC, plain Python objects out."""
from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator, Sequence

import grpc
from google.protobuf import json_format

from movielinks.common.answers import Prediction
from movielinks.proto import SERVICE_NAME
from movielinks.proto import movielinks_pb2 as pb
from movielinks.proto import movielinks_pb2_grpc as pb_grpc

SERVER_ENV = "MOVIELINKS_SERVER"
TOKEN_ENV = "MOVIELINKS_TOKEN"
DEFAULT_PORT = 50051
DEFAULT_SERVER = f"127.0.0.1:{DEFAULT_PORT}"
_HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$")
# The channel spreads calls over every address the target names (several addresses, or a DNS
# name with several records) with gRPC's round_robin, and takes a replica out of the rotation
# while its health service says the movielinks service is not SERVING (at shutdown) or its
# connection is down. Every movielinks RPC only reads, so a call that failed with UNAVAILABLE (a
# replica killed or restarting, a reset connection) or CANCELLED by the server (one that reached
# a replica in the instant it shut down, grpc/grpc#41785; a call the client cancels is never
# retried) is safe to send again: gRPC's retry policy sends it, with backoff and inside the
# call's deadline, through the balancer, so to a replica that is up. A streaming export is
# retried only until its first message arrives (gRPC commits a call once the server has
# answered). The config is the client's own: DNS TXT records do not replace it.
SERVICE_CONFIG = json.dumps({
    "loadBalancingConfig": [{"round_robin": {}}],
    "healthCheckConfig": {"serviceName": SERVICE_NAME},
    "methodConfig": [{
        "name": [{"service": SERVICE_NAME}],
        "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.1s", "maxBackoff": "1s", "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE", "CANCELLED"]},
    }],
})
# A replica that stops answering (stopped, swapping, partitioned) keeps its TCP connection up,
# so nothing above told the channel: every call sent to it waited its whole deadline. A keepalive
# ping every KEEPALIVE_TIME_MS (idle or not) that goes unanswered for KEEPALIVE_TIMEOUT_MS
# closes the connection: the calls in flight on it fail UNAVAILABLE and the retry policy sends
# them to another replica, and round_robin leaves the replica out until it answers a new
# connection. The servers allow pings this often (server.app.KEEPALIVE_OPTIONS).
KEEPALIVE_TIME_MS = 1000
KEEPALIVE_TIMEOUT_MS = 1000
KEEPALIVE_OPTIONS = [("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS), ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
                     ("grpc.keepalive_permit_without_calls", 1), ("grpc.http2.max_pings_without_data", 0),
                     # Any ping's: with one (flow control's) outstanding, keepalive waits on that one.
                     ("grpc.http2.ping_timeout_ms", KEEPALIVE_TIMEOUT_MS)]
_INT32 = (-(2**31), 2**31 - 1)  # the proto's int32 fields


class ClientError(Exception):
    """A call failed: `code` is the gRPC status name, `message` says what to do."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclasses.dataclass(frozen=True)
class SharedLink:
    """A link two films share; `contribution` as the proto's SharedLink says."""

    link: str
    contribution: float
    cosine_a: float = 0.0
    cosine_b: float = 0.0
    url: str = ""


@dataclasses.dataclass(frozen=True)
class Neighbour:
    name: str
    score: float
    year: int | None = None  # movies only
    director: str = ""
    url: str = ""
    reasons: list[SharedLink] = dataclasses.field(default_factory=list)
    imdb_id: str = ""  # "tt0111161": a movie's ids in other catalogues, "" when unknown
    wikidata_id: str = ""  # "Q172241"


@dataclasses.dataclass(frozen=True)
class Neighbours:
    query: str
    neighbours: list[Neighbour]
    index_version: str
    query_year: int | None = None
    query_director: str = ""
    query_url: str = ""
    reasons_basis: str = ""
    query_links: list[str] = dataclasses.field(default_factory=list)  # similar_to_links: the known links
    unknown_links: list[str] = dataclasses.field(default_factory=list)  # similar_to_links: those ignored
    query_imdb_id: str = ""
    query_wikidata_id: str = ""


@dataclasses.dataclass(frozen=True)
class NamedVectors:
    """Unit vectors by name: row i of `vectors` (float32 [n, dim]) is `names[i]`'s; for films
    given by their links, `unknown_links[i]` the links the index does not know (ignored)."""

    names: list[str]
    vectors: Any  # numpy.ndarray float32 [n, dim]
    unknown_links: list[list[str]]


@dataclasses.dataclass(frozen=True)
class Vectors:
    """GetVectors' answer: movies, links and films given by links, each in request order."""

    movies: NamedVectors
    links: NamedVectors
    films: NamedVectors
    index_version: str
    dim: int


@dataclasses.dataclass(frozen=True)
class ScoredMovie:
    title: str
    decision_value: float  # the strategy's score (Recommendation.score_meaning)
    year: int | None = None
    director: str = ""
    url: str = ""
    reasons: list[SharedLink] = dataclasses.field(default_factory=list)
    imdb_id: str = ""
    wikidata_id: str = ""


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """Recommend's answer as the client library's callers get it.

    The server has its own Recommendation (server.service) and the wire has the proto's
    RecommendResponse; this one is neither on purpose: it is this library's public API,
    built from the response alone, so a caller installs grpcio and protobuf without the
    server's dependencies, and a change inside the server does not change what callers see.
    """

    best: list[ScoredMovie]
    worst: list[ScoredMovie]
    index_version: str
    strategy: str = ""
    score_meaning: str = ""
    liked_resolved: list[str] = dataclasses.field(default_factory=list)
    disliked_resolved: list[str] = dataclasses.field(default_factory=list)
    reasons_basis: str = ""


@dataclasses.dataclass(frozen=True)
class Explanation:
    """Why two movies are alike (ExplainSimilarity)."""

    a: Neighbour
    b: Neighbour
    cosine: float
    basis: str
    shared_links: list[SharedLink]
    shared_total: int
    links_a: int
    links_b: int
    link_overlap_cosine: float
    index_version: str


@dataclasses.dataclass(frozen=True)
class MovieFilter:
    """Which movies a query may return (the proto's MovieFilter); the default lets every movie through."""

    min_year: int = 0
    max_year: int = 0
    must_link_to: Sequence[str] = ()
    exclude_titles: Sequence[str] = ()
    exclude_franchise: bool = False
    max_per_franchise: int = 0  # at most this many films of one franchise (0: no cap)
    diversity: float = 0.0  # 0..1: the answer picked by maximal marginal relevance (0: by score alone)

    def message(self) -> Any:
        return _request(pb.MovieFilter, min_year=self.min_year, max_year=self.max_year,
                        must_link_to=_titles("must_link_to", self.must_link_to),
                        exclude_titles=_titles("exclude_titles", self.exclude_titles),
                        exclude_franchise=self.exclude_franchise, max_per_franchise=self.max_per_franchise,
                        diversity=self.diversity)


@dataclasses.dataclass(frozen=True)
class TitleMatch:
    title: str
    match: str
    also_matched: list[str] = dataclasses.field(default_factory=list)
    imdb_id: str = ""
    wikidata_id: str = ""


@dataclasses.dataclass(frozen=True)
class Info:
    index_version: str
    movies: int
    links: int
    dim: int
    movie_index_type: str
    link_index_type: str
    dataset: dict[str, Any]
    metrics: dict[str, Any]
    attributes: list[str]
    max_k: int
    max_batch: int
    max_string_chars: int
    refused_versions: list[str]
    server_version: str = ""
    default_k: int = 10
    max_reasons: int = 0
    max_filter_links: int = 0
    has_movie_links: bool = False


def server_address(target: str) -> str:
    """HOST:PORT for gRPC from what a user typed: a missing port means 50051.

    Accepts "host", "host:port", an IPv4 or IPv6 address ("::1", "[::1]:50051"), and
    gRPC's own "unix:PATH" / "dns:..." targets as they are. Anything else raises
    ClientError(INVALID_ARGUMENT) saying what is wrong.
    """
    text = target.strip()
    if re.match(r"^(unix|unix-abstract|dns|ipv4|ipv6):", text):
        return text
    host, port = text, str(DEFAULT_PORT)
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise _bad_address(target, "an IPv6 address goes in brackets: [::1]:50051")
        port = rest[1:] if rest else port
    elif text.count(":") == 1:
        host, port = text.split(":")
    elif text.count(":") > 1:  # a bare IPv6 address, with no port
        host = text
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
        if not _HOST_NAME.match(host):
            raise _bad_address(target, "expected HOST or HOST:PORT, e.g. localhost:50051") from None
    if not (port.isdigit() and 1 <= int(port) <= 65535):
        raise _bad_address(target, f"the port {port!r} is not a number from 1 to 65535")
    return f"[{host}]:{port}" if ip is not None and ip.version == 6 else f"{host}:{port}"


def server_target(text: str) -> str:
    """The gRPC target for what a user typed: one address (as server_address), several
    comma-separated IP addresses ("10.0.0.1:50051,10.0.0.2" -> "ipv4:10.0.0.1:50051,10.0.0.2:50051",
    a missing port means 50051), or a gRPC target ("dns:///name:50051", "ipv4:...", "unix:...") as it is.

    Several addresses must be all IPv4 or all IPv6 (gRPC's ipv4: and ipv6: targets); host names
    cannot be listed, since a target resolves one name: a DNS name with several records serves
    instead. Anything else raises ClientError(INVALID_ARGUMENT) saying what is wrong.
    """
    parts = text.split(",")
    if len(parts) == 1 or re.match(r"^(unix|unix-abstract|dns|ipv4|ipv6):", text.strip()):
        return server_address(text)
    addresses = []
    for part in parts:
        if not part.strip():
            raise _bad_address(text, "an empty address in the list; separate addresses with single commas")
        address = server_address(part)
        if address.startswith(("unix", "dns:", "ipv4:", "ipv6:")):
            raise _bad_address(text, f"{part.strip()!r} is a gRPC target, which cannot be one of several addresses")
        host = address.rpartition(":")[0].strip("[]")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise _bad_address(text, f"several addresses must be IP addresses (10.0.0.1:50051,10.0.0.2:50051), "
                                     f"not the host name {host!r}; for names, give one DNS name that resolves to "
                                     "every replica (dns:///movielinks.internal:50051)") from None
        addresses.append((ip.version, address))
    versions = {version for version, _ in addresses}
    if len(versions) > 1:
        raise _bad_address(text, "several addresses must be all IPv4 or all IPv6 (gRPC's ipv4: and ipv6: targets)")
    return f"ipv{versions.pop()}:" + ",".join(address for _, address in addresses)


def _bad_address(target: str, why: str) -> "ClientError":
    return ClientError("INVALID_ARGUMENT", f"the server address {target!r} is malformed: {why}")


class MovielinksClient:
    """A connection to one movielinks server, or to several replicas of it.

    `target` is HOST[:PORT], several IP addresses "10.0.0.1:50051,10.0.0.2:50051", or a gRPC
    target such as "dns:///movielinks.internal:50051" (see server_target; default:
    $MOVIELINKS_SERVER, else 127.0.0.1:50051; a missing port means 50051; a malformed address
    raises ClientError INVALID_ARGUMENT). Calls are spread round robin over every address the
    target names (a DNS name: every record) whose connection is up and whose health check says
    SERVING (SERVICE_CONFIG). A call that fails with UNAVAILABLE (or that a server shutting
    down CANCELLED) is retried by gRPC's retry policy, on the replicas that are up: 4 attempts,
    0.1 to 1 s apart, within its deadline; with `wait_for_ready` a call instead waits, up to its
    deadline, for a server that is not up yet (a script that starts one and queries it at once).
    TLS: `tls_ca` (the CA that signed the server's certificate), plus `tls_cert`
    and `tls_key` for a client certificate; the certificate must carry the target's host name,
    or `tls_server_name` where given (needed with several IP addresses: every replica's
    certificate must carry that one name). `token` (default $MOVIELINKS_TOKEN)
    is sent as a bearer token with every call. Every call has a `timeout_s` deadline.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        timeout_s: float = 10.0,
        tls_ca: str | Path | None = None,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        token: str | None = None,
        wait_for_ready: bool = False,
        tls_server_name: str | None = None,
    ):
        self.target = server_target(target or os.environ.get(SERVER_ENV) or DEFAULT_SERVER)
        self.timeout_s = timeout_s
        self.wait_for_ready = wait_for_ready
        options = [("grpc.enable_retries", 1), ("grpc.service_config", SERVICE_CONFIG),
                   ("grpc.service_config_disable_resolution", 1), *KEEPALIVE_OPTIONS]
        token = token if token is not None else os.environ.get(TOKEN_ENV)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        tls = bool(tls_ca or tls_cert)
        if tls_server_name is not None and not tls:
            raise ClientError("INVALID_ARGUMENT", "a TLS server name (--tls-server-name) needs TLS: pass --tls-ca too")
        if tls and tls_server_name is None and re.match(r"^ipv[46]:.*,", self.target):
            # The authority of an ipv4:/ipv6: list is no host name: gRPC's hostname check would
            # fail on every replica.
            raise ClientError("INVALID_ARGUMENT", f"TLS to several addresses ({self.target}) needs the name their "
                                                  "certificates carry: pass --tls-server-name NAME (tls_server_name), "
                                                  "or give one DNS name that resolves to every replica")
        if tls:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(tls_ca), private_key=_read(tls_key), certificate_chain=_read(tls_cert)
            )
            if tls_server_name is not None:
                # Every replica's certificate is checked against this name (and it is the
                # calls' :authority and the TLS SNI), whichever address the call goes to.
                options.append(("grpc.ssl_target_name_override", tls_server_name))
            self._channel = grpc.secure_channel(self.target, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(self.target, options=options)
        self._stub = pb_grpc.MovielinksStub(self._channel)

    def __enter__(self) -> "MovielinksClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def similar_movies(self, title: str, k: int = 10, *, filter: MovieFilter | None = None,
                       reasons: int = 0) -> Neighbours:
        """The k movies most similar to `title` (itself excluded) that `filter` lets through, best first;
        with `reasons` > 0 each carries that many links it shares with `title`."""
        request = _request(pb.SimilarMoviesRequest, title=title, k=k, reasons=reasons, **_filter(filter))
        return _neighbours(self._call("SimilarMovies", request))

    def similar_movies_batch(self, titles: Sequence[str], k: int = 10, *, filter: MovieFilter | None = None,
                             reasons: int = 0, facts: bool = False) -> list[Neighbours]:
        """similar_movies for each of `titles` in one call, in the order given; year, director
        and URL only with `facts` (or `reasons`): they make the answer about 2.5 times larger."""
        request = _request(pb.BatchSimilarMoviesRequest, titles=_titles("titles", titles), k=k, reasons=reasons,
                           facts=facts, **_filter(filter))
        return [_neighbours(r) for r in self._call("BatchSimilarMovies", request).results]

    def explain_similarity(self, title_a: str, title_b: str = "", k: int = 10, *,
                           links_b: Sequence[str] = ()) -> Explanation:
        """Why two movies are alike: their cosine and the k shared links that contribute most.
        With `links_b` (and no `title_b`), B is the film those links describe (folded in)."""
        request = _request(pb.ExplainSimilarityRequest, title_a=title_a, title_b=title_b, k=k,
                           **({"links_b": _link_set("links_b", links_b)} if links_b else {}))
        r = self._call("ExplainSimilarity", request)
        return Explanation(_neighbour(r.a), _neighbour(r.b), r.cosine, r.basis, _shared(r.shared_links),
                           r.shared_total, r.links_a, r.links_b, r.link_overlap_cosine, r.index_version)

    def similar_to_links(self, links: Sequence[str], k: int = 10, *, filter: MovieFilter | None = None,
                         reasons: int = 0) -> Neighbours:
        """The k movies most similar to the film `links` describe (one the index may never have
        seen: the server folds it in), best first; `query_links` the links it knew, `unknown_links`
        those it ignored; with `reasons` > 0 each movie carries that many links it shares with them."""
        request = _request(pb.SimilarToLinksRequest, links=_titles("links", links), k=k, reasons=reasons,
                           **_filter(filter))
        return _neighbours(self._call("SimilarToLinks", request))

    def similar_to_vector(self, vector: Sequence[float], k: int = 10, *,
                          filter: MovieFilter | None = None) -> Neighbours:
        """The k movies most similar to a vector of the index's space (a numpy array of dim values)."""
        request = pb.SimilarToVectorRequest(vector=_values(vector), k=k, **_filter(filter))
        return _neighbours(self._call("SimilarToVector", request))

    def get_vectors(self, titles: Sequence[str] = (), links: Sequence[str] = (),
                    films: Sequence[Sequence[str]] = ()) -> Vectors:
        """Unit float32 vectors of movies (titles), links and films given by their links, as numpy arrays."""
        request = _request(pb.GetVectorsRequest, titles=_titles("titles", titles), links=_titles("links", links),
                           films=[_link_set("films", f) for f in films])
        r = self._call("GetVectors", request)
        return Vectors(_named_vectors(r.movies, r.dim), _named_vectors(r.links, r.dim), _named_vectors(r.films, r.dim),
                       r.index_version, r.dim)

    def similar_links(self, link: str, k: int = 10) -> Neighbours:
        """The k links most similar to `link` (itself excluded), best first."""
        return _neighbours(self._call("SimilarLinks", _request(pb.SimilarLinksRequest, link=link, k=k)))

    def nearest_links(self, title: str, k: int = 10) -> Neighbours:
        """The k links nearest to the movie's vector: the links that characterise it."""
        return _neighbours(self._call("MovieLinks", _request(pb.MovieLinksRequest, title=title, k=k)))

    def link_movies(self, link: str, k: int = 10, *, filter: MovieFilter | None = None) -> Neighbours:
        """The k movies nearest to the link's vector (that `filter` lets through)."""
        return _neighbours(self._call("LinkMovies", _request(pb.LinkMoviesRequest, link=link, k=k, **_filter(filter))))

    def recommend(
        self, liked: Sequence[str], disliked: Sequence[str] = (), k: int = 10, worst_k: int = 0, *,
        strategy: str = "", liked_links: Sequence[str] = (), disliked_links: Sequence[str] = (),
        filter: MovieFilter | None = None, reasons: int = 0, liked_films: Sequence[Sequence[str]] = (),
        disliked_films: Sequence[Sequence[str]] = (), liked_vectors: Sequence[Sequence[float]] = (),
        disliked_vectors: Sequence[Sequence[float]] = (),
    ) -> Recommendation:
        """The k best (and worst_k worst) movies for liked against disliked movies and links (and films
        given by their links, and vectors of the index's space), ranked by
        `strategy`: "" for the server's default ("neighbours"), "svm", "average_vector" or "best_score"
        (RecommendResponse.strategy says which ran, score_meaning what its scores mean)."""
        request = _request(pb.RecommendRequest, liked=_titles("liked", liked), disliked=_titles("disliked", disliked),
                           k=k, worst_k=worst_k, strategy=strategy, liked_links=_titles("liked_links", liked_links),
                           disliked_links=_titles("disliked_links", disliked_links), reasons=reasons,
                           liked_films=[_link_set("liked_films", f) for f in liked_films],
                           disliked_films=[_link_set("disliked_films", f) for f in disliked_films],
                           liked_vectors=[pb.Vector(values=_values(v)) for v in liked_vectors],
                           disliked_vectors=[pb.Vector(values=_values(v)) for v in disliked_vectors],
                           **_filter(filter))
        r = self._call("Recommend", request)
        return Recommendation(_scored(r.best), _scored(r.worst), r.index_version, r.strategy, r.score_meaning,
                              list(r.liked_resolved), list(r.disliked_resolved), r.reasons_basis)

    def predict_attribute(self, title: str, attribute: str) -> Prediction:
        """The attribute predicted from the movie's embedding, with the value the data has (or None)."""
        r = self._call("PredictAttribute", _request(pb.PredictAttributeRequest, title=title, attribute=attribute))
        return Prediction(r.title, r.attribute, r.unit, r.predicted, r.known if r.HasField("known") else None,
                          r.heldout_mse, r.baseline_mse, r.index_version)

    def lookup_title(self, title: str) -> TitleMatch:
        """The catalogue title `title` resolves to, and how it matched."""
        r = self._call("LookupTitle", _request(pb.LookupTitleRequest, title=title))
        return TitleMatch(r.title, r.match, list(r.also_matched), r.imdb_id, r.wikidata_id)

    def search_names(self, text: str, *, links: bool = False, limit: int = 10) -> tuple[list[str], int]:
        """(movie titles, or link names with `links`, containing `text`, prefix matches first; how many match)."""
        kind = pb.SearchNamesRequest.LINKS if links else pb.SearchNamesRequest.MOVIES
        r = self._call("SearchNames", _request(pb.SearchNamesRequest, text=text, kind=kind, limit=limit))
        return list(r.names), r.total

    def info(self) -> Info:
        """The served index version, its sizes and metrics, and the server's limits."""
        r = self._call("GetInfo", pb.GetInfoRequest())
        return Info(r.index_version, r.movies, r.links, r.dim, r.movie_index_type, r.link_index_type,
                    _from_struct(r.dataset), _from_struct(r.metrics), list(r.attributes),
                    r.max_k, r.max_batch, r.max_string_chars, list(r.refused_versions), r.server_version, r.default_k,
                    r.max_reasons, r.max_filter_links, r.has_movie_links)

    def export_chunks(
        self, k: int = 10, chunk_size: int = 0, timeout_s: float | None = None
    ) -> Iterator[tuple[int, list[Neighbours]]]:
        """Stream every movie's top-k neighbours: (total movies, chunk of results) per message.

        `timeout_s` bounds the whole stream (None: no deadline, since an export of a
        large catalogue takes as long as it takes).
        """
        request = _request(pb.ExportNeighboursRequest, k=k, chunk_size=chunk_size)
        stream = self._stub.ExportNeighbours(request, timeout=timeout_s, metadata=self._metadata,
                                             wait_for_ready=self.wait_for_ready)
        try:
            for chunk in stream:
                yield chunk.total_movies, [_neighbours(r) for r in chunk.results]
        except grpc.RpcError as e:
            raise self._error(e, timeout_s) from None
        finally:
            stream.cancel()  # a consumer that stops early must not leave the server searching

    def export_neighbours(self, k: int = 10, chunk_size: int = 0) -> Iterator[Neighbours]:
        """Every movie's top-k neighbours, streamed in movie id order."""
        for _, results in self.export_chunks(k, chunk_size):
            yield from results

    def export_to_file(
        self, path: str | Path, k: int = 10, *, progress: bool = True, timeout_s: float | None = None
    ) -> int:
        """Write the streamed export to .csv, .jsonl or .parquet (atomically: on any error the
        target is left as it was); returns the rows written. `progress` draws a bar on stderr
        when stderr is a terminal (never into a file or a pipe)."""
        from tqdm import tqdm

        from movielinks.common.neighbour_files import NeighbourWriter

        try:
            writer = NeighbourWriter(path)
        except ValueError as e:  # an unknown suffix, or no pyarrow for .parquet: said before any call
            raise ClientError("INVALID_ARGUMENT", str(e)) from None
        with writer, contextlib.ExitStack() as bars:
            bar = None
            for total, results in self.export_chunks(k, timeout_s=timeout_s):
                if bar is None:  # the first chunk tells how many movies the stream carries
                    # disable=None: tqdm draws only when stderr is a terminal
                    bar = bars.enter_context(tqdm(total=total, unit="movie", desc="export", disable=not progress or None))
                writer.write([r.query for r in results], [[(n.name, n.score) for n in r.neighbours] for r in results])
                bar.update(len(results))
            return writer.rows_written

    def _call(self, method: str, request):
        try:
            return getattr(self._stub, method)(request, timeout=self.timeout_s, metadata=self._metadata,
                                               wait_for_ready=self.wait_for_ready)
        except grpc.RpcError as e:
            raise self._error(e, self.timeout_s) from None

    def _error(self, error: grpc.RpcError, timeout_s: float | None) -> ClientError:
        code = error.code()
        details = error.details() or ""
        if code == grpc.StatusCode.UNAVAILABLE:
            if "," in self.target:
                return ClientError(code.name, f"cannot reach any movielinks replica at {self.target} ({details}): "
                                              f"are they running? set --server or {SERVER_ENV}")
            return ClientError(code.name, f"cannot reach the movielinks server at {self.target} ({details}): "
                                          f"is it running? set --server or {SERVER_ENV}")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            within = f"within {timeout_s:g} s" if timeout_s is not None else "before the server's deadline"
            return ClientError(code.name, f"no answer from {self.target} {within}; "
                                          "raise --timeout (timeout_s) or ask for less")
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return ClientError(code.name, f"{details or 'not authenticated'}; pass --token-file or set {TOKEN_ENV}")
        return ClientError(code.name, details or code.name)


def _request(message_type, **fields):
    """The request message, or ClientError(INVALID_ARGUMENT) naming the field protobuf cannot carry
    (an int outside int32, text that is not valid Unicode) instead of protobuf's bare ValueError."""
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, int) and not _INT32[0] <= item <= _INT32[1]:
                raise ClientError("INVALID_ARGUMENT", f"{name}={item} is out of range; `client info` shows the limits")
            if isinstance(item, str):
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    raise ClientError("INVALID_ARGUMENT", f"{name} {item!r} is not valid UTF-8 text") from None
    return message_type(**fields)


def _titles(name: str, titles: Sequence[str]) -> list[str]:
    # A lone string is a Sequence too, and would silently become one title per character.
    if isinstance(titles, str):
        raise TypeError(f"{name} must be a list of titles, not the string {titles!r}")
    return list(titles)


def _link_set(name: str, links: Sequence[str]) -> Any:
    return pb.LinkSet(links=_titles(name, links))


def _values(vector: Sequence[float]) -> list[float]:
    """A vector's values as a flat list of floats (a numpy array of any float type, or a list)."""
    return [float(v) for v in (vector.reshape(-1) if hasattr(vector, "reshape") else vector)]


def _named_vectors(rows, dim: int) -> NamedVectors:
    """The rows as NamedVectors; numpy is imported here, for callers that ask for vectors (the vectors extra)."""
    try:
        import numpy as np
    except ImportError:
        raise ClientError("FAILED_PRECONDITION", "vectors come as numpy arrays, and numpy is not installed: "
                                                 "pip install 'movielinks[vectors]'") from None
    vectors = np.array([list(r.values) for r in rows], dtype=np.float32).reshape(len(rows), dim)
    return NamedVectors([r.name for r in rows], vectors, [list(r.unknown_links) for r in rows])


def _filter(movie_filter: MovieFilter | None) -> dict[str, Any]:
    return {} if movie_filter is None else {"filter": movie_filter.message()}


def _shared(links) -> list[SharedLink]:
    return [SharedLink(s.link, s.contribution, s.cosine_a, s.cosine_b, s.url) for s in links]


def _neighbour(n) -> Neighbour:
    return Neighbour(n.name, n.score, n.year or None, n.director, n.url, _shared(n.reasons), n.imdb_id, n.wikidata_id)


def _neighbours(response) -> Neighbours:
    return Neighbours(response.query, [_neighbour(n) for n in response.neighbours], response.index_version,
                      response.query_year or None, response.query_director, response.query_url, response.reasons_basis,
                      list(response.query_links), list(response.unknown_links),
                      response.query_imdb_id, response.query_wikidata_id)


def _from_struct(struct) -> dict[str, Any]:
    """A google.protobuf.Struct as plain Python; its numbers are all doubles, so whole ones become ints again."""
    def plain(value):
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value
    return plain(json_format.MessageToDict(struct))


def _scored(movies) -> list[ScoredMovie]:
    return [ScoredMovie(m.title, m.decision_value, m.year or None, m.director, m.url, _shared(m.reasons), m.imdb_id,
                        m.wikidata_id) for m in movies]


def _read(path: str | Path | None) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ClientError("INVALID_ARGUMENT", f"{path}: cannot read ({e.strerror})") from None
