"""`python -m core COMMAND`: every engine job from the command line, with progress bars."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _config(args: argparse.Namespace, ks: tuple[int, ...]):
    from core.alignment import AlignmentConfig

    return AlignmentConfig(ks=ks, draws=args.draws, seed=args.seed, clamp_quantile=None if args.no_clamp else 0.95,
                           subset_sizes=tuple(args.subset_sizes))


def cmd_demo(args: argparse.Namespace) -> int:
    """Embed the Tux Paint stamps with both demo models, align them, and store the results."""
    from core import results
    from core.config import cache_dir, results_db_path
    from core.jobs import DEMO, run_alignment
    from core.progress import TqdmProgress

    run_id = run_alignment(DEMO["dataset"], args.model_a, args.model_b, limit=args.limit, config=_config(args, (1, 10)),
                           cache=args.cache_dir, force=args.force, progress=TqdmProgress(), device=args.device)
    db = results_db_path(cache_dir(args.cache_dir))
    info = results.run_info(run_id, db)
    print(f"run {run_id}: {info['dataset']}, {info['n']} pairs, {info['model_a']} x {info['model_b']}")
    for row in info["skipped"].itertuples():
        print(f"  skipped {row.count} stamps: {row.reason}")
    for row in results.best_pairs(run_id, db).itertuples():
        la, lb = info["layer_names"]["a"][row.layer_a], info["layer_names"]["b"][row.layer_b]
        print(f"  mutual_knn k={row.k}: {row.score:.3f} at layers ({la}, {lb}); chance {row.k / (info['n'] - 1):.4f}")
    print(f"results: {db}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    """Embed a data set with one model into the feature cache; prints the feature folder."""
    from core.data import load_dataset
    from core.encoders import create_encoder
    from core.features import extract_features
    from core.progress import TqdmProgress

    data = load_dataset(args.dataset, limit=args.limit, cache=args.cache_dir)
    features = extract_features(data, create_encoder(args.model, device=args.device), args.cache_dir, TqdmProgress())
    dims = ", ".join(f"{name}:{layer.shape[1]}" for name, layer in zip(features.layer_names, features.layers))
    print(f"{features.n} samples x {len(features.layers)} layers ({dims})")
    print(features.path)
    return 0


def load_layers(path: str) -> list[np.ndarray]:
    """A .npy of shape [n, dim] or [n, layers, dim] as a list of [n, dim] layers."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read as a .npy array ({exc})") from exc
    if array.ndim == 2:
        return [array]
    if array.ndim == 3:
        return [array[:, layer] for layer in range(array.shape[1])]
    raise ValueError(f"{path}: expected shape [n, dim] or [n, layers, dim], got {array.shape}")


def cmd_align(args: argparse.Namespace) -> int:
    """Mutual kNN between two paired feature files, best layer pair, chance and shuffled null."""
    from core.alignment import align
    from core.features import FeatureSet

    sets = []
    for name, path in (("A", args.features_a), ("B", args.features_b)):
        layers = load_layers(path)
        sets.append(FeatureSet(path, Path(path).stem, name, [f"{i}" for i in range(len(layers))], layers))
    if sets[0].n != sets[1].n:
        raise ValueError(f"{args.features_a} has {sets[0].n} rows but {args.features_b} has {sets[1].n}; rows must be paired")
    if args.queries is not None or args.gallery_sizes:
        return _align_query_sweep(args, sets)
    result = align(*sets, config=_config(args, (args.k,)))
    la, lb = result.best_pairs[args.k]
    full = result.curve[-1]
    out = {"metric": "mutual_knn", "k": args.k, "n": result.n, "score": float(result.layer_scores[args.k][la, lb]),
           "layer_pair": [la, lb] if len(sets[0].layers) > 1 or len(sets[1].layers) > 1 else None,
           "chance": full.chance, "shuffled": full.shuffled, "ci_low": full.ci_low, "ci_high": full.ci_high}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"mutual_knn k={args.k} n={result.n}: {out['score']:.4f} [95% CI {full.ci_low:.4f}, {full.ci_high:.4f}]"
              f" layer pair {out['layer_pair']}; chance {full.chance:.4f}, shuffled pairs {full.shuffled:.4f}")
    return 0


def _align_query_sweep(args: argparse.Namespace, sets) -> int:
    """The fixed-query, nested-gallery protocol: one curve point per gallery size."""
    from core.alignment import fixed_query_sweep

    sweep = fixed_query_sweep(*sets, k=args.k, queries=args.queries or 1024, gallery_sizes=args.gallery_sizes or [],
                              seed=args.seed, clamp_quantile=None if args.no_clamp else 0.95)
    multi_layer = len(sets[0].layers) > 1 or len(sets[1].layers) > 1
    curve = [{"gallery_size": p.gallery_size, "score": p.score, "ci_low": p.ci_low, "ci_high": p.ci_high, "chance": p.chance}
             for p in sweep.curve]
    out = {"metric": "mutual_knn", "k": args.k, "n": sweep.n, "queries": sweep.queries, "score": curve[-1]["score"],
           "layer_pair": list(sweep.layer_pair) if multi_layer else None, "chance": curve[-1]["chance"], "curve": curve}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"mutual_knn k={args.k}, {sweep.queries} queries, layer pair {out['layer_pair']} (chosen at the smallest gallery)")
        for point in curve:
            print(f"  gallery {point['gallery_size']:>9,}: {point['score']:.4f} [95% CI {point['ci_low']:.4f}, "
                  f"{point['ci_high']:.4f}]  chance {point['chance']:.5f}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    """List the runs in the result store."""
    from core import results
    from core.config import cache_dir, results_db_path

    runs = results.list_runs(results_db_path(cache_dir(args.cache_dir)))
    print(runs[["run_id", "created_at", "dataset", "model_a", "model_b", "n"]].to_string(index=False) if len(runs) else "no runs")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """List the registered data sets and encoders."""
    from core.data import available_datasets
    from core.encoders import available_encoders

    print("data sets:", ", ".join(available_datasets()))
    print("encoders: ", ", ".join(available_encoders()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Measure whether vision and language models "
                                     "see the world the same way (mutual k-nearest-neighbour alignment).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, fn):
        p = sub.add_parser(name, help=fn.__doc__.splitlines()[0], description=fn.__doc__)
        p.set_defaults(fn=fn)
        return p

    def analysis_options(p):
        p.add_argument("--draws", type=int, default=10, help="random nested subsets per size (default 10)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--subset-sizes", type=lambda s: [int(v) for v in s.split(",")], default=[64, 128, 256, 512],
                       help="comma-separated subset sizes; the full set is always added")
        p.add_argument("--no-clamp", action="store_true", help="skip the 0.95-quantile outlier clamp")

    demo = add("demo", cmd_demo)
    demo.add_argument("--limit", type=int, help="use at most this many stamps (spread over all categories)")
    demo.add_argument("--model-a", default="efficientnet_lite0")
    demo.add_argument("--model-b", default="minilm_l6")
    demo.add_argument("--force", action="store_true", help="recompute the alignment even if cached")
    analysis_options(demo)

    embed = add("embed", cmd_embed)
    embed.add_argument("--dataset", default="tuxpaint")
    embed.add_argument("--model", required=True)
    embed.add_argument("--limit", type=int)

    al = add("align", cmd_align)
    al.add_argument("features_a", metavar="A.npy")
    al.add_argument("features_b", metavar="B.npy")
    al.add_argument("--k", type=int, default=10)
    al.add_argument("--json", action="store_true", help="print one JSON object")
    al.add_argument("--queries", type=int, help="fixed-query protocol: this many query pairs (default 1024 with --gallery-sizes)")
    al.add_argument("--gallery-sizes", type=lambda s: [int(v) for v in s.split(",")],
                    help="fixed-query protocol: nested gallery sizes m1,m2,... (each >= queries)")
    analysis_options(al)

    add("runs", cmd_runs)
    add("list", cmd_list)
    for p in sub.choices.values():
        p.add_argument("--cache-dir", help="cache folder (default: $PLATO_CACHE_DIR or ./cache)")
        p.add_argument("--device", default="cpu", help="torch device for encoders (cpu, cuda)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2
