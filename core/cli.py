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
                           subset_sizes=tuple(args.subset_sizes), metric=getattr(args, "metric", "mutual_knn"))


def cmd_demo(args: argparse.Namespace) -> int:
    """Embed a data set (default: the Tux Paint stamps) with two models, align them, store the results."""
    from core import results
    from core.config import cache_dir, results_db_path
    from core.jobs import run_alignment
    from core.progress import TqdmProgress

    run_id = run_alignment(args.dataset, args.model_a, args.model_b, limit=args.limit, config=_config(args, (1, 10)),
                           cache=args.cache_dir, force=args.force, progress=TqdmProgress(), device=args.device,
                           model_options=(dict(args.option_a), dict(args.option_b)),
                           dataset_options=_dataset_options(args))
    db = results_db_path(cache_dir(args.cache_dir))
    info = results.run_info(run_id, db)
    print(f"run {run_id}: {info['dataset']}, {info['n']} pairs, {info['model_a']} x {info['model_b']}")
    for row in info["skipped"].itertuples():
        print(f"  skipped {row.count}: {row.reason}")
    for row in results.best_pairs(run_id, db).itertuples():
        la, lb = info["layer_names"]["a"][row.layer_a], info["layer_names"]["b"][row.layer_b]
        print(f"  mutual_knn k={row.k}: {row.score:.3f} at layers ({la}, {lb}); chance {row.k / (info['n'] - 1):.4f}")
    print(f"results: {db}")
    return 0


def _dataset_options(args: argparse.Namespace) -> dict:
    options = {"source": args.source, "strict": args.strict}
    if args.images_dir:
        options["images_dir"] = args.images_dir
    if args.revision:
        options["revision"] = args.revision
    if args.media:
        options["media"] = args.media
    return options


def cmd_embed(args: argparse.Namespace) -> int:
    """Embed a data set with one model into the feature cache; prints the feature folder."""
    from core.data import load_dataset
    from core.encoders import create_encoder, modality_options
    from core.features import extract_features
    from core.progress import TqdmProgress

    data = load_dataset(args.dataset, limit=args.limit, cache=args.cache_dir, **_dataset_options(args))
    # what the encoder is built with, here or in every Ray actor
    options = {**modality_options(args.model, args.modality or data.media), **dict(args.option)}
    if args.ray:
        from core.distributed import extract_features_ray

        features = extract_features_ray(data, args.model, args.cache_dir, dtype=args.dtype, shard_size=args.shard_size,
                                        actors=args.actors, gpus_per_actor=args.gpus_per_actor, address=args.address,
                                        progress=TqdmProgress(unit="shards"), encoder_kwargs=options,
                                        workers=args.workers or 0)
    else:
        features = extract_features(data, create_encoder(args.model, device=args.device, **options), args.cache_dir,
                                    TqdmProgress(unit="samples"), dtype=args.dtype, shard_size=args.shard_size,
                                    workers=args.workers)
    dims = ", ".join(f"{name}:{layer.shape[1]}" for name, layer in zip(features.layer_names, features.layers))
    print(f"{features.n} samples x {len(features.layers)} layers ({dims})")
    for row, why in features.bad_rows.items():
        print(f"  row {row} ({data.samples[row].sample_id}) not embedded: {why}")
    print(features.path)
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    """Import reference feature files, export stored features, or list the feature store."""
    from core.config import cache_dir
    from core.features import export_features, import_reference, load_feature_set

    root = cache_dir(args.cache_dir) / "features"
    wanted = {"import": 1, "export": 2, "list": 0}[args.action]
    if len(args.targets) != wanted:
        raise ValueError(f"features {args.action} takes {wanted} argument(s): "
                         + {"import": "FILE.pt", "export": "FINGERPRINT_PREFIX OUT.npy|OUT.parquet", "list": "none"}[args.action])
    if args.action == "import":
        source = args.targets[0]
        features = import_reference(source, args.name or Path(source).stem, args.modality, args.cache_dir)
        print(f"{features.n} samples x {len(features.layers)} layers -> {features.path}")
    elif args.action == "export":
        prefix, out = args.targets
        matches = [p for p in root.glob(f"{prefix}*") if (p / "manifest.json").exists()]
        if len(matches) != 1:
            raise ValueError(f"{len(matches)} feature sets in {root} start with {prefix!r}; give a longer prefix")
        print(export_features(load_feature_set(matches[0]), out))
    else:
        for folder in sorted(root.glob("*")) if root.exists() else []:
            if (folder / "manifest.json").exists():
                m = json.loads((folder / "manifest.json").read_text())
                print(f"{folder.name[:12]}  {m['model']:<24} {m.get('dataset', m.get('source', '')):<12} n={m['n']} "
                      f"layers={len(m['layer_names'])} {m.get('dtype', 'float32')}")
            elif folder.name.endswith(".partial"):
                print(f"{folder.name[:12]}  (incomplete: resumes on the next embed)")
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


def parse_option(text: str) -> tuple[str, object]:
    """`KEY=VALUE` -> (key, value): JSON where it parses (true, 8, "auto", {...}), else the text itself."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"an encoder option is KEY=VALUE (dtype=bfloat16, device_map=auto); got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def parse_k(text: str) -> int | float:
    """`10` -> 10 neighbours; `0.01` or `n/100` -> one percent of each gallery."""
    try:
        if text.startswith("n/"):
            return 1 / float(text[2:])
        return int(text) if text.isdigit() else float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"k must be a count (10) or a fraction of the gallery (0.01, n/100); got {text!r}")


def cmd_align(args: argparse.Namespace) -> int:
    """Alignment of two paired feature files: best layer pair, 95% CI, chance and shuffled-pairs null."""
    from core.alignment import align, align_features, k_for_size, metric_spec
    from core.features import FeatureSet

    sets = []
    for name, path in (("A", args.features_a), ("B", args.features_b)):
        layers = load_layers(path)
        sets.append(FeatureSet(path, Path(path).stem, name, [f"{i}" for i in range(len(layers))], layers))
    if sets[0].n != sets[1].n:
        raise ValueError(f"{args.features_a} has {sets[0].n} rows but {args.features_b} has {sets[1].n}; rows must be paired")
    multi_layer = len(sets[0].layers) > 1 or len(sets[1].layers) > 1
    if args.concat_layers:
        from core.alignment import with_concatenated_layers

        sets = [with_concatenated_layers(s) for s in sets]
    if args.queries is not None or args.gallery_sizes:
        return _align_query_sweep(args, sets, multi_layer)
    k = k_for_size(args.k, sets[0].n)
    if metric_spec(args.metric).kind == "features":
        params = {"kernel": args.kernel, "sigma": args.sigma} if args.metric in ("cka", "unbiased_cka") else {}
        if args.metric == "svcca":  # default: the reference's 10 directions, or fewer where a layer is narrower
            narrowest = min(layer.shape[1] for s in sets for layer in s.layers)
            params = {"cca_dim": args.cca_dim or min(10, narrowest, sets[0].n - 1)}
        result = align_features(*sets, args.metric, k=k, draws=args.draws, seed=args.seed,
                                clamp_quantile=None if args.no_clamp else 0.95, **params)
        point, layer_pair, matrix = result.point, result.layer_pair, result.layer_scores
    else:
        result = align(*sets, config=_config(args, (k,)))
        point, layer_pair, matrix = result.curve[-1], result.best_pairs[k], result.layer_scores[k]
    out = {"metric": args.metric, "n": point.gallery_size, "layer_pair": list(layer_pair) if multi_layer else None,
           **_point(point), "shuffled": _finite(point.shuffled), "layer_scores": _matrix(matrix)}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.metric} n={out['n']} layer pair {out['layer_pair']}: {_describe(out)}")
    return 0


def _finite(value: float) -> float | None:
    return None if value is None or value != value else float(value)  # NaN -> null: JSON has no NaN


def _matrix(matrix) -> list[list[float | None]]:
    """The [layers A, layers B] score matrix as nested lists."""
    return [[_finite(v) for v in row] for row in np.asarray(matrix, dtype=float)]


def _point(p) -> dict:
    """One curve point as the JSON contract names it."""
    return {"gallery_size": p.gallery_size, "k": p.k or None, "score": _finite(p.score), "ci_low": _finite(p.ci_low),
            "ci_high": _finite(p.ci_high), "chance": _finite(p.chance), "null": _finite(p.shuffled),
            "calibrated": _finite(p.calibrated)}


def _describe(point: dict) -> str:
    text = f"{point['score']:.4f} [95% CI {point['ci_low']:.4f}, {point['ci_high']:.4f}]"
    for label, key in (("chance", "chance"), ("shuffled pairs", "null"), ("calibrated", "calibrated"), ("recall@k", "recall")):
        if point.get(key) is not None:
            text += f"  {label} {point[key]:.4f}"
    return text


def _align_query_sweep(args: argparse.Namespace, sets, multi_layer: bool) -> int:
    """The fixed-query, nested-gallery protocol: one curve point per gallery size."""
    from core.alignment import fixed_query_sweep

    sweep = fixed_query_sweep(*sets, k=args.k, queries=args.queries or 1024, gallery_sizes=args.gallery_sizes or [],
                              seed=args.seed, clamp_quantile=None if args.no_clamp else 0.95, backend=args.backend,
                              approximate_above=args.approximate_above, metric=args.metric)
    curve = [_point(p) for p in sweep.curve]
    for point, recall in zip(curve, sweep.recall or []):
        point["recall"] = recall  # recall@k of the approximate index against exact search
    out = {"metric": args.metric, "k": args.k, "n": sweep.n, "queries": sweep.queries, "score": curve[-1]["score"],
           "layer_pair": list(sweep.layer_pair) if multi_layer else None, "chance": curve[-1]["chance"], "curve": curve,
           "layer_scores": _matrix(sweep.layer_scores)}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.metric} k={args.k}, {sweep.queries} queries, layer pair {out['layer_pair']} (chosen at the smallest gallery)")
        for point in curve:
            print(f"  gallery {point['gallery_size']:>9,} k={point['k']}: {_describe(point)}")
    return 0


def cmd_lm_quality(args: argparse.Namespace) -> int:
    """Language-model quality: bits per byte on a corpus you give, stored with the model (alignment can be plotted against it)."""
    from core import results
    from core.config import cache_dir, results_db_path
    from core.jobs import measure_lm_quality

    if args.model:
        row = measure_lm_quality(args.model, args.corpus, args.cache_dir, args.max_length, args.stride, args.device)
        print(f"{row['model']}: {row['bits_per_byte']:.4f} bits per byte on {row['corpus']} ({row['corpus_bytes']:,} bytes)")
    else:
        table = results.model_quality(results_db_path(cache_dir(args.cache_dir)))
        print(table[["model", "corpus", "bits_per_byte", "corpus_bytes"]].to_string(index=False) if len(table) else "no measurements")
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
        doc = fn.__doc__.replace("%", "%%")  # argparse formats help with %
        p = sub.add_parser(name, help=doc.splitlines()[0], description=doc)
        p.set_defaults(fn=fn)
        return p

    def analysis_options(p):
        p.add_argument("--draws", type=int, default=10, help="random nested subsets per size (default 10)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--subset-sizes", type=lambda s: [int(v) for v in s.split(",")], default=[64, 128, 256, 512],
                       help="comma-separated subset sizes; the full set is always added")
        p.add_argument("--no-clamp", action="store_true", help="skip the 0.95-quantile outlier clamp")

    def dataset_options(p, default="tuxpaint"):
        p.add_argument("--dataset", default=default,
                       help="tuxpaint, openclipart, manifest, folder (alias image_folder), coco, webdataset, hf")
        p.add_argument("--source", help="the data: a manifest (.jsonl/.csv/.parquet), a folder with .txt captions, COCO captions "
                       "JSON, tar shards (glob or {000..009}); default: the Debian package for tuxpaint/openclipart")
        p.add_argument("--media", choices=["image", "audio", "video"],
                       help="folder, webdataset, hf, tuxpaint: what is paired with the captions (default image; tuxpaint: "
                       "image or audio, its sound effects); a manifest says so by its image/audio/video column")
        p.add_argument("--images-dir", help="coco: the folder of the images (default: beside the JSON)")
        p.add_argument("--revision", help="hf: the dataset revision (e.g. wit_1024 for minhuh/prh)")
        p.add_argument("--strict", action="store_true", help="stop at the first bad row instead of skipping it")

    demo = add("demo", cmd_demo)
    dataset_options(demo)
    demo.add_argument("--limit", type=int, help="use at most this many pairs (spread over all categories)")
    demo.add_argument("--model-a", default="efficientnet_lite0", help="the media model (image, audio or video)")
    demo.add_argument("--model-b", default="minilm_l6", help="the text model")
    for side in ("a", "b"):
        demo.add_argument(f"--option-{side}", type=parse_option, action="append", default=[], metavar="KEY=VALUE",
                          help=f"an option of model {side.upper()} (repeatable): dtype=bfloat16, device_map=auto, "
                          "load_in_4bit=true, pooling=mean, batch_size=64, ...")
    demo.add_argument("--force", action="store_true", help="recompute the alignment even if cached")
    analysis_options(demo)

    embed = add("embed", cmd_embed)
    dataset_options(embed)
    embed.add_argument("--model", required=True)
    embed.add_argument("--option", type=parse_option, action="append", default=[], metavar="KEY=VALUE",
                       help="an encoder option (repeatable): dtype=bfloat16, device_map=auto, offload_folder=/scratch, "
                       "load_in_4bit=true, pooling=last, batch_size=64, ...")
    embed.add_argument("--modality", choices=["image", "audio", "video", "text"],
                       help="for hf: and open_clip: models: what they embed (default: the data set's media; text: the captions)")
    embed.add_argument("--limit", type=int)
    embed.add_argument("--dtype", default="float32", choices=["float32", "float16"], help="storage type of the features")
    embed.add_argument("--shard-size", type=int, help="rows per shard; a killed job resumes after the last complete one")
    embed.add_argument("--workers", type=int, help="processes decoding media files ahead of the model (0: none; "
                       "default: every core but two, at most 8, so none on a 2-core machine; with --ray: none, per actor)")
    embed.add_argument("--ray", action="store_true", help="run the shards on a Ray actor pool (local Ray unless --address)")
    embed.add_argument("--actors", type=int, default=1, help="with --ray: encoder actors")
    embed.add_argument("--gpus-per-actor", type=float, default=0, help="with --ray: GPUs per actor (the encoder runs on CUDA)")
    embed.add_argument("--address", help="with --ray: a running cluster (auto, ray://host:port)")

    al = add("align", cmd_align)
    al.add_argument("features_a", metavar="A.npy")
    al.add_argument("features_b", metavar="B.npy")
    al.add_argument("--metric", default="mutual_knn", help="mutual_knn (default), jaccard_knn, cycle_knn, lcs_knn, "
                    "edit_distance_knn, cka, unbiased_cka, cknna, svcca")
    al.add_argument("--kernel", default="linear", choices=["linear", "rbf"], help="kernel of cka / unbiased_cka")
    al.add_argument("--sigma", type=float, default=1.0, help="RBF kernel width (cka, unbiased_cka)")
    al.add_argument("--cca-dim", type=int, help="SVD directions kept by svcca (default 10, or the narrowest layer's width)")
    al.add_argument("--concat-layers", action="store_true",
                    help="also score all layers concatenated, as one more layer (index = number of layers)")
    al.add_argument("--k", type=parse_k, default=10,
                    help="neighbours: a count (10), or a fraction of the gallery (0.01 or n/100)")
    al.add_argument("--json", action="store_true", help="print one JSON object")
    al.add_argument("--backend", default="auto", choices=["auto", "faiss", "torch", "numpy"],
                    help="exact kNN back end (auto: faiss when installed, on the GPU with faiss-gpu)")
    al.add_argument("--approximate-above", type=int, metavar="N",
                    help="use an IVF index when the largest gallery exceeds N; its recall@k is measured and reported")
    al.add_argument("--queries", type=int, help="fixed-query protocol: this many query pairs (default 1024 with --gallery-sizes)")
    al.add_argument("--gallery-sizes", type=lambda s: [int(v) for v in s.split(",")],
                    help="fixed-query protocol: nested gallery sizes m1,m2,... (each >= queries)")
    analysis_options(al)

    feats = add("features", cmd_features)
    feats.add_argument("action", choices=["list", "import", "export"])
    feats.add_argument("targets", nargs="*", metavar="ARG",
                       help="import FILE.pt | export FINGERPRINT_PREFIX OUT.npy|OUT.parquet")
    feats.add_argument("--name", help="import: the model name to store")
    feats.add_argument("--modality", default="image", help="import: image, text, audio or video")

    quality = add("lm-quality", cmd_lm_quality)
    quality.add_argument("--model", help="a causal LM (preset name, hf:<folder or hub id>); omit to list the stored measurements")
    quality.add_argument("--corpus", help="a text file, or .jsonl with a 'text' field per line")
    quality.add_argument("--max-length", type=int, default=1024)
    quality.add_argument("--stride", type=int, default=512)

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
