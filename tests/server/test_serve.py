"""`serve(config, stop)`: the server process as a library call, in this process."""
from __future__ import annotations

import threading
import urllib.request

import pytest

from movielinks.client import MovielinksClient
from movielinks.indexer.build import build_index
from movielinks.server.serve import ServeConfig, Serving, serve
from tests.fixtures import make_run


@pytest.fixture(scope="module")
def index_root(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    build_index(make_run(tmp / "run", titles=["Alien (film)", "Heat (1995 film)"], n_movies=120, n_links=40),
                tmp / "index", progress=False)
    return tmp / "index"


def test_serve_answers_over_grpc_and_http_then_stops_within_its_grace(index_root):
    stop, ready, ended = threading.Event(), [], []
    config = ServeConfig(str(index_root), port=0, http_port=0, grace=1.0, reload_interval=0)
    thread = threading.Thread(target=lambda: ended.append(serve(config, stop, ready.append)), daemon=True)
    thread.start()
    for _ in range(300):
        if ready or ended:
            break
        thread.join(0.1)
    serving: Serving = ready[0]
    assert serving.port > 0 and serving.http_port > 0 and serving.metrics_port == 0
    with MovielinksClient(f"127.0.0.1:{serving.port}") as client:
        assert len(client.similar_movies("Alien (film)", k=3).neighbours) == 3
    with urllib.request.urlopen(f"http://127.0.0.1:{serving.http_port}/", timeout=10) as page:
        assert page.status == 200
    stop.set()
    thread.join(10)
    assert not thread.is_alive() and ended == [0]


@pytest.mark.parametrize("config, words", [
    (ServeConfig("unused", tls_cert="c.pem"), "--tls-cert and --tls-key go together"),
    (ServeConfig("unused", workers=0), "must be at least 1"),
    (ServeConfig("unused", http_head_timeout=0), "must be more than 0 seconds"),
])
def test_bad_settings_are_refused_before_anything_starts(config, words, capsys):
    assert serve(config, threading.Event()) == 2
    assert words in capsys.readouterr().err


def test_a_missing_index_is_one_line_and_exit_2(tmp_path, capsys):
    assert serve(ServeConfig(str(tmp_path / "nowhere"), port=0), threading.Event()) == 2
    err = capsys.readouterr().err
    assert err.startswith("server: error: ") and err.count("\n") == 1
