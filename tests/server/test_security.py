"""TLS, mutual TLS and the bearer token, against in-process servers over a tiny index.

Certificates are made at test time: a CA, a server certificate for
127.0.0.1/localhost and a client certificate signed by it, and an unrelated CA.
"""
from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import logging
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from movielinks.indexer.build import build_index
from movielinks.proto import movielinks_pb2 as pb
from movielinks.proto import movielinks_pb2_grpc as pb_grpc
from movielinks.server import security
from movielinks.server.app import load_service, start
from movielinks.server.errors import ServiceError
from movielinks.server.versions import ServiceHolder
from movielinks.server.service import MovieService
from movielinks.server.security import TokenInterceptor, load_token, server_credentials
from tests.e2e_server import REPO, running_server
from tests.fixtures import make_run

pytestmark = pytest.mark.slow  # real server (or indexer, collector) processes

TOKEN = "s3cret-Token_for.tests~42"
TITLE = "Interstellar (film)"
TIMEOUT_S = 10


@dataclasses.dataclass(frozen=True)
class Pem:
    cert: bytes
    key: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(name: str) -> tuple[Pem, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)), key, cert


def make_leaf(ca_key, ca_cert: x509.Certificate, name: str, *, server: bool, valid_days: float = 1) -> Pem:
    """A certificate from 5 minutes ago to `valid_days` from now (negative: expired)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    start = min(now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=valid_days - 1))
    builder = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


@dataclasses.dataclass(frozen=True)
class Pki:
    ca: Pem
    server: Pem
    client: Pem
    other_ca: Pem
    other_client: Pem  # signed by the unrelated CA
    files: dict[str, Path]


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    ca, ca_key, ca_cert = make_ca("movielinks test CA")
    other_ca, other_key, other_cert = make_ca("unrelated CA")
    server = make_leaf(ca_key, ca_cert, "localhost", server=True)
    client = make_leaf(ca_key, ca_cert, "movielinks test client", server=False)
    other_client = make_leaf(other_key, other_cert, "stranger", server=False)
    folder = tmp_path_factory.mktemp("pki")
    files = {"ca": folder / "ca.pem", "server_cert": folder / "server.pem", "server_key": folder / "server.key"}
    files["ca"].write_bytes(ca.cert)
    files["server_cert"].write_bytes(server.cert)
    files["server_key"].write_bytes(server.key)
    return Pki(ca, server, client, other_ca, other_client, files)


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory) -> MovieService:
    tmp = tmp_path_factory.mktemp("index")
    build_index(make_run(tmp / "run", titles=[TITLE], n_movies=60, n_links=20, dim=8), tmp / "index", progress=False)
    return load_service(str(tmp / "index"))


class SpyCatalogue:
    """Counts SimilarMovies calls reaching the domain code, then answers as the real one."""

    def __init__(self, catalogue: MovieService):
        self._catalogue = catalogue
        self.similar_movies_calls = 0

    def similar_movies(self, title: str, k: int, *args):
        self.similar_movies_calls += 1
        return self._catalogue.similar_movies(title, k, *args)

    def __getattr__(self, name):
        return getattr(self._catalogue, name)


@pytest.fixture
def serve(catalogue):
    """serve(credentials=None, interceptors=()) -> (port, spy); every server is stopped afterwards."""
    running = []

    def _serve(credentials=None, interceptors=()):
        spy = SpyCatalogue(catalogue)
        server = start(ServiceHolder(spy), "127.0.0.1", 0, max_workers=2, credentials=credentials,
                       interceptors=interceptors)
        running.append(server)
        return server.port, spy

    yield _serve
    for server in running:
        server.stop(0)


def similar(channel: grpc.Channel, metadata=()) -> pb.NeighboursResponse:
    return pb_grpc.MovielinksStub(channel).SimilarMovies(
        pb.SimilarMoviesRequest(title=TITLE, k=3), metadata=metadata, timeout=TIMEOUT_S
    )


def status_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code()


def tls_channel(port: int, root: bytes, client: Pem | None = None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root, private_key=client.key if client else None,
        certificate_chain=client.cert if client else None,
    )
    return grpc.secure_channel(f"localhost:{port}", credentials)


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


# --- TLS ---------------------------------------------------------------------------------------

def test_tls_with_the_right_ca_answers(serve, pki):
    port, spy = serve(server_credentials(pki.files["server_cert"], pki.files["server_key"]))
    with tls_channel(port, pki.ca.cert) as channel:
        response = similar(channel)
    assert response.query == TITLE and len(response.neighbours) == 3
    assert spy.similar_movies_calls == 1


def test_tls_with_an_unrelated_ca_is_refused(serve, pki):
    port, spy = serve(server_credentials(pki.files["server_cert"], pki.files["server_key"]))
    with tls_channel(port, pki.other_ca.cert) as channel:
        assert status_of(lambda: similar(channel)) is grpc.StatusCode.UNAVAILABLE
    assert spy.similar_movies_calls == 0


def test_plaintext_to_a_tls_port_is_refused(serve, pki):
    port, spy = serve(server_credentials(pki.files["server_cert"], pki.files["server_key"]))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert status_of(lambda: similar(channel)) is grpc.StatusCode.UNAVAILABLE
    assert spy.similar_movies_calls == 0


def test_mutual_tls_needs_a_client_certificate_from_the_ca(serve, pki):
    credentials = server_credentials(pki.files["server_cert"], pki.files["server_key"], client_ca_file=pki.files["ca"])
    port, spy = serve(credentials)
    with tls_channel(port, pki.ca.cert) as channel:
        assert status_of(lambda: similar(channel)) is grpc.StatusCode.UNAVAILABLE
    with tls_channel(port, pki.ca.cert, pki.other_client) as channel:
        assert status_of(lambda: similar(channel)) is grpc.StatusCode.UNAVAILABLE
    assert spy.similar_movies_calls == 0
    with tls_channel(port, pki.ca.cert, pki.client) as channel:
        assert similar(channel).query == TITLE
    assert spy.similar_movies_calls == 1


def test_credentials_name_the_missing_or_bad_file(pki, tmp_path):
    with pytest.raises(ServiceError, match=r"server certificate .*nowhere\.pem: No such file"):
        server_credentials(tmp_path / "nowhere.pem", pki.files["server_key"])
    with pytest.raises(ServiceError, match=r"client CA certificate .*absent-ca\.pem"):
        server_credentials(pki.files["server_cert"], pki.files["server_key"], tmp_path / "absent-ca.pem")
    swapped = tmp_path / "swapped.pem"
    swapped.write_bytes(pki.server.key)  # a key where the certificate belongs
    with pytest.raises(ServiceError, match=r"server certificate .*swapped\.pem is not a PEM file with a CERTIFICATE"):
        server_credentials(swapped, pki.files["server_key"])
    with pytest.raises(ServiceError, match=r"server private key .*server\.pem is not a PEM file with a PRIVATE KEY"):
        server_credentials(pki.files["server_cert"], pki.files["server_cert"])


# --- bearer token ------------------------------------------------------------------------------

@pytest.mark.parametrize("metadata", [(), bearer("wrong-token"), bearer(TOKEN + "x"), bearer(TOKEN[:-1]),
                                      (("authorization", TOKEN),), (("authorization", f"Basic {TOKEN}"),)],
                         ids=["none", "wrong", "longer", "shorter", "no-scheme", "basic-scheme"])
def test_a_call_without_the_token_is_refused_before_its_handler_runs(serve, metadata):
    port, spy = serve(interceptors=[TokenInterceptor(TOKEN)])
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(grpc.RpcError) as caught:
            similar(channel, metadata)
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "authorization: Bearer <token>" in caught.value.details()
    assert TOKEN not in caught.value.details()
    assert spy.similar_movies_calls == 0


def test_the_right_token_is_answered(serve):
    port, spy = serve(interceptors=[TokenInterceptor(TOKEN)])
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert similar(channel, bearer(TOKEN)).query == TITLE
        assert similar(channel, (("authorization", f"bearer {TOKEN}"),)).query == TITLE  # the scheme ignores case
    assert spy.similar_movies_calls == 2


def test_every_rpc_shape_is_refused_cleanly(serve):
    """A streamed response (ExportNeighbours) and a bidirectional stream (reflection) get
    UNAUTHENTICATED too, not a hang or an internal error."""
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    port, _ = serve(interceptors=[TokenInterceptor(TOKEN)])
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        export = pb_grpc.MovielinksStub(channel).ExportNeighbours(pb.ExportNeighboursRequest(k=2), timeout=TIMEOUT_S)
        assert status_of(lambda: list(export)) is grpc.StatusCode.UNAUTHENTICATED
        listing = reflection_pb2.ServerReflectionRequest(list_services="")
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = reflection.ServerReflectionInfo(iter([listing]), timeout=TIMEOUT_S)
        assert status_of(lambda: list(replies)) is grpc.StatusCode.UNAUTHENTICATED
        replies = reflection.ServerReflectionInfo(iter([listing]), metadata=bearer(TOKEN), timeout=TIMEOUT_S)
        assert "movielinks.v1.Movielinks" in [s.name for r in replies for s in r.list_services_response.service]


def test_health_check_is_open_unless_configured_otherwise(serve):
    check = health_pb2.HealthCheckRequest(service="movielinks.v1.Movielinks")
    port, _ = serve(interceptors=[TokenInterceptor(TOKEN)])
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(check, timeout=TIMEOUT_S)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    port, _ = serve(interceptors=[TokenInterceptor(TOKEN, open_methods=())])
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        assert status_of(lambda: stub.Check(check, timeout=TIMEOUT_S)) is grpc.StatusCode.UNAUTHENTICATED
        answer = stub.Check(check, metadata=bearer(TOKEN), timeout=TIMEOUT_S)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_a_refused_call_is_logged_without_the_token(serve, caplog):
    port, _ = serve(interceptors=[TokenInterceptor(TOKEN)])
    with caplog.at_level(logging.DEBUG):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            status_of(lambda: similar(channel, bearer(TOKEN + "-almost")))
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refusals and "/movielinks.v1.Movielinks/SimilarMovies" in refusals[0]
    assert all(TOKEN not in r.getMessage() and TOKEN not in str(r.args) for r in caplog.records)


def test_token_with_tls_and_mutual_tls_together(serve, pki):
    credentials = server_credentials(pki.files["server_cert"], pki.files["server_key"], client_ca_file=pki.files["ca"])
    port, spy = serve(credentials, [TokenInterceptor(TOKEN)])
    with tls_channel(port, pki.ca.cert, pki.client) as channel:
        assert status_of(lambda: similar(channel)) is grpc.StatusCode.UNAUTHENTICATED
        assert similar(channel, bearer(TOKEN)).query == TITLE
    assert spy.similar_movies_calls == 1


# --- load_token --------------------------------------------------------------------------------

def test_load_token_from_file_env_or_none(tmp_path, monkeypatch):
    monkeypatch.delenv("MOVIELINKS_TOKEN", raising=False)
    assert load_token() is None
    monkeypatch.setenv("MOVIELINKS_TOKEN", f"  {TOKEN}\n")
    assert load_token() == TOKEN
    token_file = tmp_path / "token"
    token_file.write_text("from-the-file\n")
    assert load_token(token_file) == "from-the-file"  # the file wins over the environment
    monkeypatch.setenv("OTHER_TOKEN", "other")
    assert load_token(env="OTHER_TOKEN") == "other"


def test_load_token_errors_name_the_source(tmp_path, monkeypatch):
    with pytest.raises(ServiceError, match=r"cannot read the token file .*missing-token: No such file"):
        load_token(tmp_path / "missing-token")
    empty = tmp_path / "empty-token"
    empty.write_text(" \n\t\n")
    with pytest.raises(ServiceError, match=r"token file .*empty-token is empty"):
        load_token(empty)
    monkeypatch.setenv("MOVIELINKS_TOKEN", "")
    with pytest.raises(ServiceError, match="environment variable MOVIELINKS_TOKEN is empty"):
        load_token()
    spaced = tmp_path / "spaced-token"
    spaced.write_text("two words")
    with pytest.raises(ServiceError, match="printable ASCII") as caught:
        load_token(spaced)
    assert "two words" not in str(caught.value)
    with pytest.raises(ServiceError, match="cannot read the token file"):
        load_token(tmp_path)  # a directory


def test_interceptor_refuses_an_empty_token():
    with pytest.raises(ValueError):
        TokenInterceptor("")
    assert security.HEALTH_METHODS <= TokenInterceptor(TOKEN).open_methods


def test_credentials_refuse_a_key_that_does_not_match_the_certificate(pki, tmp_path):
    stray_key = tmp_path / "stray.key"
    stray_key.write_bytes(pki.client.key)
    with pytest.raises(ServiceError, match=r"server\.pem and private key .*stray\.key are not a valid pair"):
        server_credentials(pki.files["server_cert"], stray_key)


def test_an_expired_server_certificate_is_named_at_start(pki, tmp_path, caplog):
    # Issue 13 (smaller): the server started with an expired certificate without a word.
    ca, ca_key, ca_cert = make_ca("expiring CA")
    expired = make_leaf(ca_key, ca_cert, "localhost", server=True, valid_days=-2)
    (tmp_path / "expired.pem").write_bytes(expired.cert)
    (tmp_path / "expired.key").write_bytes(expired.key)
    with caplog.at_level(logging.WARNING, logger="movielinks.server"):
        server_credentials(pki.files["server_cert"], pki.files["server_key"])
        assert not [r for r in caplog.records if "certificate" in r.getMessage()]
        server_credentials(tmp_path / "expired.pem", tmp_path / "expired.key")
    [warning] = [r.getMessage() for r in caplog.records if "certificate" in r.getMessage()]
    assert f"{tmp_path / 'expired.pem'} expired on" in warning and "clients will refuse" in warning


def test_real_server_with_mutual_tls_and_a_token_and_the_client_command(pki, tmp_path):
    """The `server` process with --tls-* and --token-file, called by the `client` command."""
    build_index(make_run(tmp_path / "run", titles=["Interstellar (film)"], n_movies=50, n_links=20),
                tmp_path / "index", progress=False)
    files = {name: tmp_path / f"{name}.pem" for name in ("client_cert", "client_key", "other_cert", "other_key")}
    files["client_cert"].write_bytes(pki.client.cert)
    files["client_key"].write_bytes(pki.client.key)
    files["other_cert"].write_bytes(pki.other_client.cert)
    files["other_key"].write_bytes(pki.other_client.key)
    (tmp_path / "token").write_text("s3cret-token\n")
    (tmp_path / "wrong").write_text("not-the-token\n")
    tls = ["--tls-cert", str(pki.files["server_cert"]), "--tls-key", str(pki.files["server_key"]),
           "--tls-client-ca", str(pki.files["ca"]), "--token-file", str(tmp_path / "token")]
    with running_server(tmp_path / "index", *tls) as server:
        assert "tls=mutual auth=token" in "".join(server.log_lines)
        port = server.address.rsplit(":", 1)[1]

        def client(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "movielinks.client", "--server", f"localhost:{port}", *args, "query",
                                   "--movie", "Interstellar (film)", "-k", "3"],
                                  cwd=REPO, capture_output=True, text=True, timeout=60)

        ca = ["--tls-ca", str(pki.files["ca"])]
        mine = ["--tls-cert", str(files["client_cert"]), "--tls-key", str(files["client_key"])]
        ok = client(*ca, *mine, "--token-file", str(tmp_path / "token"))
        assert ok.returncode == 0 and ok.stdout.startswith("Interstellar (film)"), ok.stderr
        wrong_token = client(*ca, *mine, "--token-file", str(tmp_path / "wrong"))
        assert wrong_token.returncode == 1 and "bearer token" in wrong_token.stderr
        no_client_cert = client(*ca, "--token-file", str(tmp_path / "token"))
        assert no_client_cert.returncode == 1 and "cannot reach" in no_client_cert.stderr
        stranger = client(*ca, "--tls-cert", str(files["other_cert"]), "--tls-key", str(files["other_key"]),
                          "--token-file", str(tmp_path / "token"))
        assert stranger.returncode == 1
        assert "s3cret-token" not in "".join(server.log_lines)


def test_the_http_gateway_speaks_https_with_the_same_files_and_needs_the_same_token(pki, tmp_path):
    import json
    import ssl
    import urllib.error
    import urllib.request

    build_index(make_run(tmp_path / "run", titles=["Interstellar (film)"], n_movies=50, n_links=20),
                tmp_path / "index", progress=False)
    (tmp_path / "client.pem").write_bytes(pki.client.cert)
    (tmp_path / "client.key").write_bytes(pki.client.key)
    (tmp_path / "token").write_text("s3cret-token\n")
    tls = ["--tls-cert", str(pki.files["server_cert"]), "--tls-key", str(pki.files["server_key"]),
           "--tls-client-ca", str(pki.files["ca"]), "--token-file", str(tmp_path / "token"), "--http-port", "0",
           "--grace", "1"]  # the refused handshake's connection is waited for at shutdown, for the grace at most
    with running_server(tmp_path / "index", *tls) as server:
        url = server.http_url.replace("127.0.0.1", "localhost")
        assert url.startswith("https://")

        def get(context: ssl.SSLContext, token: str | None = "s3cret-token"):
            request = urllib.request.Request(url + "v1/lookup-title?title=interstellar",
                                             headers={"Authorization": f"Bearer {token}"} if token else {})
            with urllib.request.urlopen(request, context=context, timeout=30) as response:
                return json.loads(response.read())

        trusted = ssl.create_default_context(cafile=str(pki.files["ca"]))
        # Mutual TLS: without a client certificate the handshake fails (with TLS 1.3 the client may
        # only see the server closing the connection).
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            get(trusted)
        trusted.load_cert_chain(str(tmp_path / "client.pem"), str(tmp_path / "client.key"))
        assert get(trusted) == {"title": "Interstellar (film)", "match": "qualifier", "also_matched": [], "imdb_id": "",
                                "wikidata_id": ""}
        with pytest.raises(urllib.error.HTTPError) as refused:
            get(trusted, token=None)
        assert refused.value.code == 401


def test_refused_calls_are_logged_once_an_interval_with_their_count(caplog, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(security.time, "monotonic", lambda: clock[0])
    refusals = security._RefusalLog(interval_s=60.0)
    with caplog.at_level(logging.WARNING, logger="movielinks.server"):
        for i in range(500):
            refusals.refused(f"/m.S/M{i}")
        clock[0] += 61
        refusals.refused("/m.S/Last")
        clock[0] += 61
        refusals.refused("/m.S/Alone")
    lines = [record.getMessage() for record in caplog.records]
    assert lines == ["refused a call to '/m.S/M0': no valid bearer token",
                     "refused 500 calls without a valid bearer token since the last such line (the latest to '/m.S/Last')",
                     "refused a call to '/m.S/Alone': no valid bearer token"]
