"""--link-kind-weights: parsing, each pair's weight (its best-weighted kind), weighted epochs,
the run's manifest and the evaluation of the pairs that are not citation-only."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from movielinks.common.film_record import kind_weights
from movielinks.trainer.cli import main
from movielinks.trainer.data import Film, LinkTable
from movielinks.trainer.errors import TrainerError
from movielinks.trainer.run import load_run
from movielinks.trainer.sampler import epoch_batches, pair_keys, weighted_order
from movielinks.trainer.train import TrainConfig, train
from movielinks.trainer.vocab import build_vocabulary
from tests.conftest import clustered_films, write_ndjson


def test_kind_weights_read_kind_names_and_leave_the_others_at_1():
    assert kind_weights("") == {}
    assert kind_weights(" Infobox=2, references = 0.25 ,navbox=0,") == {"i": 2.0, "r": 0.25, "n": 0.0}


@pytest.mark.parametrize("spec, problem", [
    ("prose=1", "unknown link kind 'prose'"),
    ("references=-0.5", "finite number >= 0"),
    ("references=nan", "finite number >= 0"),
    ("references=inf", "finite number >= 0"),
    ("references=lots", "not a number"),
    ("references", "expected KIND=WEIGHT"),
    ("body=1,body=0", "given twice"),
    ("infobox=0,body=0,references=0,navbox=0,categories=0", "every kind weighs 0"),
])
def test_bad_kind_weights_are_refused_by_name(spec, problem):
    with pytest.raises(ValueError, match=problem):
        kind_weights(spec)
    with pytest.raises(TrainerError, match="--link-kind-weights: .*" + problem):
        TrainConfig(link_kind_weights=spec).check()


def test_a_pair_weighs_as_its_best_weighted_kind():
    table = LinkTable.from_films([Film("A", {}, ["x", "y", "x", "z"], kinds="brri"), Film("B", {}, ["y", "x"], kinds="rn"),
                                  Film("C", {}, ["x", "y"])])  # no kinds: weighs 1
    vocab, _ = build_vocabulary(table, min_link_count=1)
    weights = vocab.pair_weights(kind_weights("infobox=2,references=0.2,navbox=0.5"))
    by_pair = {(vocab.movies[m], vocab.links[j]): w for (m, j), w in zip(vocab.pairs.tolist(), weights.tolist())}
    assert by_pair == {("A", "x"): 1.0, ("A", "y"): 0.2, ("A", "z"): 2.0, ("B", "y"): 0.2, ("B", "x"): 0.5,
                       ("C", "x"): 1.0, ("C", "y"): 1.0}
    assert vocab.pair_weights(kind_weights("body=1")) is None  # every pair 1: nothing to weigh
    assert build_vocabulary(LinkTable.from_films([Film("C", {}, ["x"])]), 1)[0].pair_weights({"r": 0.0}) is None


def test_a_weighted_epoch_draws_each_pair_its_weight_in_times_on_average():
    rng = np.random.default_rng(0)
    weights = np.array([0.0, 2.0, 0.5, 1.0] * 2_000)
    order = weighted_order(rng, rng.permutation(len(weights)), weights)
    drawn = np.bincount(order, minlength=len(weights))
    assert not drawn[weights == 0].any() and (drawn[weights == 2] == 2).all() and (drawn[weights == 1] == 1).all()
    assert set(drawn[weights == 0.5].tolist()) == {0, 1} and drawn[weights == 0.5].mean() == pytest.approx(0.5, abs=0.05)


def test_pairs_of_weight_0_are_never_positives_nor_negatives():
    pairs = np.array([(m, j) for m in range(20) for j in range(10) if (m + j) % 3], dtype=np.int32)
    weights = np.where(pairs[:, 1] == 1, 0.0, 1.0)
    keys = np.sort(pair_keys(pairs, 10))
    batches = list(epoch_batches(pairs, keys, 20, 10, negative_ratio=3, positives_per_batch=16,
                                 rng=np.random.default_rng(1), pair_weights=weights))
    positives = np.concatenate([b.links for b in batches])
    assert len(positives) == int(weights.sum()) and 1 not in positives.tolist()
    negatives = np.concatenate([b.negative_pairs() for b in batches])
    assert not np.isin(pair_keys(negatives, 10), keys).any()


@pytest.mark.tf
def test_a_weighted_run_records_its_weights_and_measures_the_uncited_pairs(tmp_path, capsys):
    """Each film's last link is in its references only; weighing references 0 trains on none
    of them, and the manifest says which weights ran and what they left."""
    records = [r + ["b" * (len(r[2]) - 1) + "r"] for r in clustered_films()]
    data = write_ndjson(tmp_path / "films.ndjson", records)
    config = TrainConfig(dim=8, epochs=2, batch_positives=128, min_link_count=2, link_kind_weights="references=0")
    run = load_run(train(data, tmp_path / "run", config, progress=False, log=lambda line: None))
    vocabulary, metrics = run.manifest.vocabulary, run.manifest.metrics
    assert run.manifest.params["link_kind_weights"] == "references=0"
    assert vocabulary["link_kind_weights"] == {"infobox": 1.0, "body": 1.0, "references": 0.0, "navbox": 1.0,
                                               "categories": 1.0}
    cited = int(run.movie_links.cited.sum())
    assert 0 < vocabulary["train_pairs_weight_zero"] <= cited
    assert vocabulary["train_pairs_weight_sum"] == vocabulary["train_pairs"] - vocabulary["train_pairs_weight_zero"]
    assert 0 < metrics["uncited"]["heldout_pairs"] < metrics["heldout_pairs"]
    assert 0 <= metrics["uncited"]["link_auc"] <= 1 and not math.isnan(metrics["uncited"]["recall_at_10"])
    json.dumps(metrics, allow_nan=False)
    # Every pair at 0 is refused before training, in one line.
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "none"), "--min-link-count", "2",
                 "--link-kind-weights", "body=0,references=0"]) == 2
    assert "weighs every training pair 0" in capsys.readouterr().err
