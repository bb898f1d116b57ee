"""`trainer` command line: a thin layer over trainer.train, trainer.fetch and trainer.plot.

    trainer train --data FILE --out RUN [options]
    trainer fetch NAME [--cache DIR]
    trainer plot RUN --out map.png
    trainer synth --preset notebook --out films.ndjson
    trainer evaluate RUN
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from movielinks.common.commands import closed_pipe_is_a_normal_end, command_parser
from movielinks.trainer.errors import TrainerError
from movielinks.trainer.huge_pages import restart_with_huge_pages

DATA_ENV = "MOVIELINKS_DATA"

EPILOG = f"""\
The dataset is --data, else the file or directory in ${DATA_ENV}.
Exit codes: 0 done, 2 bad input or arguments (one line on stderr), 130 interrupted
(the last finished epoch is checkpointed: rerun with --resume).
"""


def entry() -> int:
    """The `trainer` command: `main` in a process whose malloc asks for huge pages (trainer.huge_pages)."""
    restart_with_huge_pages()
    return main()


@closed_pipe_is_a_normal_end
def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.command(args)
    except TrainerError as e:
        print(f"trainer: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("trainer: interrupted; rerun the same command with --resume to continue", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("trainer", "Learn movie and link embeddings from films' outgoing links.", epilog=EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    for add_command in (_train_command, _evaluate_command, _fetch_command, _launch_command, _serve_command,
                        _synth_command, _plot_command):
        add_command(commands)
    return parser


def _train_command(commands: argparse._SubParsersAction) -> None:
    from movielinks.trainer.data import FORMATS
    from movielinks.trainer.train import OBJECTIVE_NAMES, OPTIMIZER_NAMES, TrainConfig

    defaults = TrainConfig()
    train = commands.add_parser("train", help="train on a dataset and write a run directory", epilog=EPILOG,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    train.set_defaults(command=_train)
    train.add_argument("--data", help=f"dataset file or directory (default: ${DATA_ENV})")
    train.add_argument("--format", default="auto", choices=("auto",) + FORMATS, help="dataset format")
    train.add_argument("--out", required=True, help="run directory to create (must not exist)")
    train.add_argument("--ratings", metavar="FILE",
                       help="people's ratings, 'user,title,rating' CSV (exact page titles) or MovieLens's u.data "
                            "(or its folder; matched by title and year): films liked by the same person share one "
                            "more link while training (never served)")
    train.add_argument("--like-threshold", type=float, default=defaults.like_threshold,
                       help="with --ratings: a rating this high or higher (stars, 0.5 to 5) is a like")
    train.add_argument("--strict", action="store_true",
                       help="stop at the first bad record (or bad ratings line) instead of skipping it")
    train.add_argument("--resume", action="store_true", help="continue from the checkpoint of an interrupted run")
    train.add_argument("--checkpoint-dir", help="where per-epoch checkpoints go (default: OUT.checkpoint)")
    train.add_argument("--quiet", action="store_true", help="no progress bars, one line per epoch")
    train.add_argument("--dim", type=int, default=defaults.dim, help="embedding dimensions")
    train.add_argument("--negatives", dest="negatives_per_positive", type=int, default=defaults.negatives_per_positive,
                       help="sampled negative pairs per positive pair")
    train.add_argument("--min-link-count", type=int, default=defaults.min_link_count,
                       help="keep links that occur in at least this many films")
    train.add_argument("--epochs", type=int, default=defaults.epochs, help="passes over the training pairs")
    train.add_argument("--batch-positives", type=int, default=defaults.batch_positives, help="positive pairs per step")
    train.add_argument("--learning-rate", type=float, default=defaults.learning_rate,
                       help="learning rate of the tables' optimizer")
    train.add_argument("--optimizer", default=defaults.optimizer, choices=OPTIMIZER_NAMES,
                       help="the tables' optimizer: adam (row-wise, two moments a weight), partial-rowwise-adam (the first "
                            "moment a weight, the second a row: two thirds of adam's row traffic) or rowwise-adagrad "
                            "(one number a row: a third of the row traffic; its learning rate wants to be larger)")
    train.add_argument("--objective", default=defaults.objective, choices=OBJECTIVE_NAMES,
                       help="loss: logistic (class-balanced) or mse (the notebook's)")
    train.add_argument("--negative-power", type=float, default=defaults.negative_power,
                       help="negative links drawn by (films linking to them) ** power: 0 uniform, 0.75 word2vec's, 1 by popularity")
    train.add_argument("--negative-pool", type=int, default=defaults.negative_pool, metavar="N",
                       help="each batch draws its negatives from N random movies and N links shared by its positives "
                            "(as PyTorch-BigGraph shares its negatives): far fewer table rows a step; 0: from the whole catalogue")
    train.add_argument("--heldout-fraction", type=float, default=defaults.heldout_fraction,
                       help="fraction of (movie, link) pairs held out for evaluation")
    train.add_argument("--seed", type=int, default=defaults.seed,
                       help="fixes the held-out split, the initialisation and the sampling")
    train.add_argument("--link-kinds", default=defaults.link_kinds,
                       help="train only on links of these kinds, comma-separated: infobox, body, references, navbox, "
                            "categories (records with link kinds, as the collector writes; others keep every link); "
                            "empty: every link")
    train.add_argument("--link-kind-weights", default=defaults.link_kind_weights, metavar="KIND=W,...",
                       help="weigh each (film, link) pair's training loss by the best-weighted kind the film has the "
                            "link as, e.g. 'references=0.3,navbox=0.5' (kinds as --link-kinds; unnamed kinds weigh "
                            "1; 0 trains not on the pair, which still is never drawn as a negative; a pair weighing "
                            "w is drawn w times an epoch on average); empty: every pair weighs 1")


def _train(args: argparse.Namespace) -> int:
    from movielinks.trainer.train import TrainConfig, train

    data = args.data or os.environ.get(DATA_ENV)
    if not data:
        raise TrainerError(f"no dataset: pass --data FILE or set {DATA_ENV}")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})
    train(data, args.out, config, data_format=args.format, ratings=args.ratings, strict=args.strict, resume=args.resume,
          checkpoint_dir=args.checkpoint_dir, progress=not args.quiet)
    return 0


def _evaluate_command(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser("evaluate", help="print a run's evaluation table")
    evaluate.set_defaults(command=_evaluate)
    evaluate.add_argument("run", help="run directory")
    evaluate.add_argument("--json", action="store_true", help="the manifest's metrics as JSON")


def _evaluate(args: argparse.Namespace) -> int:
    from movielinks.trainer.evaluate import format_table
    from movielinks.trainer.run import load_run

    run = load_run(args.run)
    metrics = run.manifest.metrics
    print(json.dumps(metrics, indent=1) if args.json else format_table(metrics, run.attribute_models))
    return 0


def _fetch_command(commands: argparse._SubParsersAction) -> None:
    fetch = commands.add_parser("fetch", help="download a named public dataset into the cache")
    fetch.set_defaults(command=_fetch)
    fetch.add_argument("name", help="dataset name (see `trainer fetch --list`)", nargs="?")
    fetch.add_argument("--list", action="store_true", help="list the datasets that can be fetched")
    fetch.add_argument("--cache", help="cache directory (default: $MOVIELINKS_CACHE or ~/.cache/movielinks)")
    fetch.add_argument("--base-url", help="mirror to download from (default: $MOVIELINKS_FETCH_BASE_URL or GitHub raw)")
    fetch.add_argument("--quiet", action="store_true", help="no progress bars")


def _fetch(args: argparse.Namespace) -> int:
    from movielinks.trainer.fetch import DATASETS, FetchError, fetch

    if args.list or not args.name:
        for name, dataset in DATASETS.items():
            print(f"{name:<24} {getattr(dataset, 'description', '')}")
        return 0
    try:
        path = fetch(args.name, args.cache, args.base_url, progress=not args.quiet)
    except FetchError as e:
        raise TrainerError(str(e)) from e
    print(path)
    return 0


def _launch_command(commands: argparse._SubParsersAction) -> None:
    from movielinks.trainer.distributed import STRATEGIES

    launch = commands.add_parser(
        "launch", help="train on a local cluster of processes on loopback (tf.distribute)",
        description="--strategy mirrored: start WORKERS processes that each run `trainer train ARGS` "
                    "(MultiWorkerMirroredStrategy; worker 0 writes the run). --strategy ps: start WORKERS workers "
                    "and PS parameter servers, then `trainer train ARGS` as the chief of that cluster "
                    "(ParameterServerStrategy). TF_CONFIG is set for each; all stop when the training ends or "
                    "one of them fails.",
        epilog="example: trainer launch --workers 2 -- --data films.ndjson --out work/runs/r2",
    )
    launch.set_defaults(command=_launch)
    launch.add_argument("--strategy", choices=STRATEGIES, default="mirrored",
                        help="mirrored: MultiWorkerMirroredStrategy (default: the faster here, docs/distributed.md); "
                             "ps: ParameterServerStrategy")
    launch.add_argument("--workers", type=int, default=2, help="worker processes")
    launch.add_argument("--ps", type=int, help="parameter server processes (--strategy ps; default 1)")
    launch.add_argument("--timeout", type=float, help="stop the whole cluster after this many seconds")
    launch.add_argument("train_args", nargs=argparse.REMAINDER, metavar="-- TRAIN_ARGS",
                        help="the arguments of `trainer train`, after --")


def _launch(args: argparse.Namespace) -> int:
    from movielinks.trainer.distributed import launch

    train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    if not train_args:
        raise TrainerError("no training arguments: trainer launch --workers 2 -- --data FILE --out RUN")
    return launch(train_args, args.workers, args.ps, strategy=args.strategy, timeout_s=args.timeout)


def _serve_command(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run this machine's worker or parameter server (from TF_CONFIG)")
    serve.set_defaults(command=_serve)


def _serve(args: argparse.Namespace) -> int:
    from movielinks.trainer.distributed import serve

    serve()
    return 0


def _synth_command(commands: argparse._SubParsersAction) -> None:
    synth = commands.add_parser("synth", help="write a synthetic dataset with planted topics (any size)",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    synth.set_defaults(command=_synth)
    synth.add_argument("--out", required=True, help="file to write: .ndjson, or .ndjson.gz compressed")
    synth.add_argument("--preset", choices=("notebook", "1m"), default="notebook",
                       help="notebook: 10,000 films x ~95 links; 1m: 1,000,000 films x ~30 links")
    synth.add_argument("--films", type=int, help="number of films (overrides the preset)")
    synth.add_argument("--links-per-film", type=float, help="mean links drawn a film (overrides the preset)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--quiet", action="store_true", help="no progress bar")


def _synth(args: argparse.Namespace) -> int:
    from movielinks.trainer.synth import PRESETS, write

    spec = dataclasses.replace(PRESETS[args.preset], seed=args.seed)
    if args.films is not None:
        spec = dataclasses.replace(spec, films=args.films)
    if args.links_per_film is not None:
        spec = dataclasses.replace(spec, links_per_film=args.links_per_film)
    if spec.films < 1 or spec.links_per_film <= 0:
        raise TrainerError(f"--films must be at least 1 and --links-per-film positive, got {spec.films} and "
                           f"{spec.links_per_film}")
    print(write(spec, args.out, progress=not args.quiet))
    return 0


def _plot_command(commands: argparse._SubParsersAction) -> None:
    plot = commands.add_parser("plot", help="draw a 2D map of a run's movie space")
    plot.set_defaults(command=_plot)
    plot.add_argument("run", help="run directory")
    plot.add_argument("--out", required=True, help="PNG file to write")
    plot.add_argument("--method", default="tsne", choices=("tsne", "pca"), help="2D projection (default tsne)")
    plot.add_argument("--max-movies", type=int, default=4000, help="movies to place on the map")
    plot.add_argument("--labels", type=int, default=40, help="titles to label")
    plot.add_argument("--clusters", type=int, default=12, help="clusters to colour (k-means on the vectors)")
    plot.add_argument("--seed", type=int, default=0, help="fixes the sample and the projection (default 0)")


def _plot(args: argparse.Namespace) -> int:
    from movielinks.trainer.plot import plot_run

    print(plot_run(args.run, args.out, method=args.method, max_movies=args.max_movies, n_labels=args.labels,
                   n_clusters=args.clusters, seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
