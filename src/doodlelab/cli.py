"""The ``doodlelab`` command line. Heavy imports happen inside the subcommands.

Every user mistake (bad path, bad data, bad config value) ends as one line on stderr
and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from doodlelab import __version__
from doodlelab.errors import UserError


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, metavar="FILE.toml", help="TOML file of settings")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE", help="override one setting, e.g. optim.lr=0.05")


def _add_data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR",
                   help="course folder (default: $DOODLELAB_DATA, then ./data/quickdraw_subset_np)")


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of every subcommand."""
    parser = _Parser(
        prog="doodlelab",
        description="Deep learning from first principles on Quick, Draw! doodles: a numpy MLP "
        "trained, measured and checked against its PyTorch twin.",
        epilog="Data: --data DIR, else $DOODLELAB_DATA, else ./data/quickdraw_subset_np. "
        "Bad input exits with status 2 and one line on stderr.",
    )
    parser.add_argument("--version", action="version", version=f"doodlelab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="train a model and write a run folder")
    train.add_argument("model", choices=["classifier", "two_tower"],
                       help="classifier (MLP + softmax) or two_tower (image and word-vector MLPs)")
    train.add_argument("--backend", choices=["numpy", "torch"], default="numpy")
    _add_data_arg(train)
    train.add_argument("--out", type=Path, default=None, metavar="RUN_DIR",
                       help="run folder to write (default: runs/<model>-<backend>-<time>)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace a finished run already in RUN_DIR")
    _add_config_args(train)

    ev = sub.add_parser("evaluate", help="test metrics of a trained run")
    ev.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    _add_data_arg(ev)
    ev.add_argument("--json", type=Path, metavar="FILE", help="also write the metrics here")

    gc = sub.add_parser("gradcheck", help="numpy backprop vs torch autograd on the first batch")
    gc.add_argument("--data", metavar="DIR",
                    help="course folder whose first training batch to use "
                         "(default: a seeded synthetic batch)")
    gc.add_argument("--json", type=Path, metavar="FILE", help="also write the report here")
    gc.add_argument("--steps", type=int, default=5, metavar="N",
                    help="optimizer steps whose parameters are compared too (default 5)")
    gc.add_argument("--model", choices=["classifier", "two_tower", "all"], default="classifier",
                    help="which model to check (default classifier)")
    _add_config_args(gc)

    cmp = sub.add_parser("compare", help="two runs side by side: test metrics, overlaid curves")
    cmp.add_argument("run_a", type=Path, metavar="RUN_A")
    cmp.add_argument("run_b", type=Path, metavar="RUN_B")
    cmp.add_argument("--out", type=Path, default=None, metavar="DIR",
                     help="folder to write (default: runs/compare-<RUN_A>-<RUN_B>)")

    sw = sub.add_parser("sweep", help="grid of settings judged on the validation split only")
    _add_data_arg(sw)
    sw.add_argument("--grid", action="append", default=[], metavar="SECTION.KEY=[V1,V2]",
                    help="values to try for one setting (TOML array); repeat for a grid")
    sw.add_argument("--seeds", default="0", metavar="S1,S2",
                    help="comma-separated training seeds per point (default 0)")
    sw.add_argument("--backend", choices=["numpy", "torch"], default="numpy")
    sw.add_argument("--model", choices=["classifier", "two_tower"], default="classifier",
                    help="which model to sweep (default classifier)")
    sw.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the CSVs")
    _add_config_args(sw)

    bn = sub.add_parser("bench", help="seconds per training epoch: numpy vs torch vs scikit-learn")
    bn.add_argument("--json", type=Path, metavar="FILE", help="also write the report here")
    bn.add_argument("--samples", type=int, default=20_000, metavar="N",
                    help="synthetic images per epoch (default 20000)")
    bn.add_argument("--epochs", type=int, default=5, metavar="N",
                    help="timed epochs per backend, after one warm-up (default 5)")
    bn.add_argument("--threads", type=int, default=None, metavar="N",
                    help="train every backend on N threads (default: the size rule)")
    _add_config_args(bn)

    zs = sub.add_parser("zeroshot", help="two-tower model trained without some classes, scored on them")
    zs.add_argument("--holdout", required=True, metavar="NAME,NAME",
                    help="classes left out of training, recognised only through their word vectors")
    zs.add_argument("--backend", choices=["numpy", "torch"], default="numpy")
    _add_data_arg(zs)
    zs.add_argument("--json", type=Path, metavar="FILE", help="also write the report here")
    _add_config_args(zs)

    ft = sub.add_parser("fetch", help="official Quick, Draw! bitmaps to a course-layout folder")
    ft.add_argument("classes", nargs="*", metavar="CLASS",
                    help="class names in label order (default: rabbit yoga hand snowman motorbike)")
    ft.add_argument("--list", action="store_true", help="print the 345 official class names and exit")
    ft.add_argument("--out", type=Path, default=Path("data/quickdraw_subset_np"), metavar="DIR",
                    help="folder to write (default data/quickdraw_subset_np)")
    ft.add_argument("--train", type=int, default=4000, metavar="N", help="training drawings per class")
    ft.add_argument("--test", type=int, default=1000, metavar="N", help="test drawings per class")
    ft.add_argument("--seed", type=int, default=0, help="which drawings are picked (default 0)")
    ft.add_argument("--cache", type=Path, default=None, metavar="DIR",
                    help="where downloaded class files are kept (default ~/.cache/doodlelab/quickdraw)")
    ft.add_argument("--url", default=None, metavar="BASE",
                    help="base URL of <class>.npy files (default $DOODLELAB_QUICKDRAW_URL, "
                         "else the official bucket)")
    ft.add_argument("--timeout", type=float, default=60.0, metavar="SEC")
    ft.add_argument("--download-only", action="store_true", help="only fill the cache")
    ft.add_argument("--overwrite", action="store_true", help="replace the course files in --out")
    ft.add_argument("--allow-unknown", action="store_true",
                    help="accept class names outside the official 345 (for other servers)")

    from doodlelab import pipeline
    from doodlelab.demo.server import add_parser as add_demo_parser

    add_demo_parser(sub)
    pipeline.add_parser(sub)  # run, report

    rn = sub.add_parser("render", help="Quick, Draw! strokes (.ndjson) to 28x28 images, the dataset's way")
    rn.add_argument("strokes", type=Path, metavar="STROKES.ndjson",
                    help="one JSON drawing a line, as in the official simplified/<class>.ndjson")
    rn.add_argument("--images", type=Path, required=True, metavar="FILE.npy",
                    help="where to write the (N, 28, 28) uint8 images")
    rn.add_argument("--labels", type=Path, default=None, metavar="FILE.npy",
                    help="also write (N,) int64 labels: the position of each drawing's word in --classes")
    rn.add_argument("--classes", default=None, metavar="NAME,NAME",
                    help="keep only drawings of these words, labelled in this order "
                         "(default with --labels: rabbit,yoga,hand,snowman,motorbike)")
    rn.add_argument("--raw", action="store_true",
                    help="strokes are raw (any coordinates): simplify them as the dataset did first")
    rn.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return parser


def _summary(metrics: dict) -> str:
    from doodlelab.metrics import SCALAR_KEYS

    line = "  ".join(f"{k}={metrics[k]:.4f}" for k in SCALAR_KEYS if metrics.get(k) is not None)
    if "without_tta" in metrics:
        line += f"  (without test-time shifts: accuracy={metrics['without_tta']['accuracy']:.4f})"
    return line


def cmd_train(args: argparse.Namespace) -> int:
    from doodlelab.config import load_config
    from doodlelab.runs import train_classifier

    cfg = load_config(args.config, args.overrides)
    if args.out is None:
        from datetime import datetime

        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{args.model}-{args.backend}-{stamp}"
    else:
        out = args.out
    metrics = train_classifier(data=args.data, out=out, cfg=cfg, backend=args.backend,
                               overwrite=args.overwrite, task=args.model)
    print(f"{args.model} ({args.backend}) -> {out}")
    print(f"test: {_summary(metrics)}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from doodlelab.fileio import write_json
    from doodlelab.runs import evaluate_run

    metrics = evaluate_run(args.run_dir, args.data)
    if args.json:
        write_json(args.json, metrics)
    print(f"test: {_summary(metrics)}")
    return 0


def cmd_gradcheck(args: argparse.Namespace) -> int:
    from doodlelab.config import load_config
    from doodlelab.data.course import resolve_data_dir
    from doodlelab.fileio import write_json

    cfg = load_config(args.config, args.overrides)
    if not 1 <= args.steps <= 100:
        raise UserError(f"--steps must be in [1, 100] (got {args.steps})")
    data_dir = resolve_data_dir(args.data) if args.data is not None else None
    try:
        from doodlelab.twin.gradcheck import format_report, run_gradcheck
    except ImportError as exc:
        raise UserError(f"gradcheck needs PyTorch ({exc}); install it with "
                        "pip install -e '.[torch]'") from None
    models = ("classifier", "two_tower") if args.model == "all" else (args.model,)
    report = run_gradcheck(cfg, data_dir, steps=args.steps, models=models)
    print(format_report(report))
    if args.json:
        write_json(args.json, report)
    for problem in report["failures"]:
        print(f"doodlelab: gradcheck failed: {problem}", file=sys.stderr)
    return 0 if report["passed"] else 1


def cmd_compare(args: argparse.Namespace) -> int:
    from doodlelab.compare import compare_runs, format_comparison

    out = args.out or Path("runs") / f"compare-{args.run_a.name}-{args.run_b.name}"
    summary = compare_runs(args.run_a, args.run_b, out)
    print(format_comparison(summary))
    print(f"-> {out}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from doodlelab.config import load_config
    from doodlelab.sweep import parse_grid, run_sweep

    base = load_config(args.config, args.overrides)
    grid = parse_grid(args.grid)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds {args.seeds!r}: expected comma-separated integers") from None
    summary = run_sweep(data=args.data, out=args.out, base=base, grid=grid, seeds=seeds,
                        backend=args.backend, model=args.model)
    for row in summary:
        print(f"{row['val_accuracy_mean']:.4f} +- {row['val_accuracy_std']:.4f}  "
              f"(best epoch {row['best_epoch_mean']:g}, {row['seconds_mean']:g} s)  {row['label']}")
    print(f"-> {args.out}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from doodlelab.config import load_config
    from doodlelab.fileio import write_json

    cfg = load_config(args.config, args.overrides)
    if not 1 <= args.samples <= 10_000_000 or not 1 <= args.epochs <= 1000:
        raise UserError(f"--samples must be in [1, 10000000] and --epochs in [1, 1000] "
                        f"(got {args.samples}, {args.epochs})")
    if args.threads is not None and not 1 <= args.threads <= 1024:
        raise UserError(f"--threads must be in [1, 1024] (got {args.threads})")
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise UserError(f"bench needs PyTorch ({exc}); install it with "
                        "pip install -e '.[torch]'") from None
    from doodlelab.bench import format_bench, run_bench

    report = run_bench(cfg, samples=args.samples, epochs=args.epochs, threads=args.threads)
    print(format_bench(report))
    if args.json:
        write_json(args.json, report)
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    from doodlelab import pipeline

    return pipeline.command(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from doodlelab.demo.server import command

    return command(args)


def cmd_zeroshot(args: argparse.Namespace) -> int:
    from doodlelab.config import load_config
    from doodlelab.zeroshot import format_zero_shot, zero_shot

    cfg = load_config(args.config, args.overrides)
    holdout = [h.strip() for h in args.holdout.split(",") if h.strip()]
    report = zero_shot(data=args.data, holdout=holdout, cfg=cfg, backend=args.backend, out=args.json)
    print(format_zero_shot(report))
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from doodlelab.data import download
    from doodlelab.data.course import CLASSES

    if args.list:
        print("\n".join(download.QUICKDRAW_CLASSES))
        return 0
    classes = args.classes or list(CLASSES)
    if args.download_only:
        names = download.check_class_names(classes, args.allow_unknown)
        for name in names:
            path = download.download_class(name, args.cache, args.url, allow_unknown=args.allow_unknown,
                                           timeout=args.timeout)
            print(f"{name} -> {path}")
        return 0
    manifest = download.build_course_folder(
        classes, args.out, args.train, args.test, args.seed, args.cache, args.url,
        overwrite=args.overwrite, allow_unknown=args.allow_unknown, timeout=args.timeout)
    counts = manifest.get("counts", {})
    print(f"{len(manifest['classes'])} classes -> {args.out} ({counts}); see {args.out / download.MANIFEST}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    import io

    import numpy as np

    from doodlelab.data.course import CLASSES
    from doodlelab.data.render import render_ndjson
    from doodlelab.fileio import write_bytes

    outputs = [p for p in (args.images, args.labels) if p is not None]
    if len({p.resolve() for p in outputs}) != len(outputs):
        raise UserError(f"--images and --labels both name {args.images}; give each its own file")
    if not args.overwrite:
        for path in outputs:
            if path.exists():
                raise UserError(f"{path} exists; pass --overwrite to replace it")
    classes = None
    if args.classes is not None:
        classes = [c.strip() for c in args.classes.split(",") if c.strip()]
        if not classes or len(set(classes)) != len(classes):
            raise UserError(f"--classes {args.classes!r}: expected distinct comma-separated names")
    elif args.labels is not None:
        classes = list(CLASSES)
    images, labels, words = render_ndjson(args.strokes, classes, raw=args.raw)
    if len(images) == 0:
        raise UserError(f"{args.strokes}: no drawing" + (f" of {', '.join(classes)}" if classes else ""))
    # Everything is rendered before anything is written: a bad line leaves no half output.
    for path, array in ((args.images, images), (args.labels, labels)):
        if path is not None:
            buf = io.BytesIO()
            np.save(buf, array, allow_pickle=False)
            write_bytes(path, buf.getvalue())
    counts = ", ".join(f"{w} {words.count(w)}" for w in dict.fromkeys(words))
    print(f"{len(images)} drawings ({counts}) -> {args.images}"
          + (f", {args.labels}" if args.labels is not None else ""))
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "gradcheck": cmd_gradcheck,
            "compare": cmd_compare, "sweep": cmd_sweep, "bench": cmd_bench, "render": cmd_render,
            "fetch": cmd_fetch, "zeroshot": cmd_zeroshot, "demo": cmd_demo,
            "run": cmd_pipeline, "report": cmd_pipeline}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 ok, 1 a check failed, 2 bad input, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"doodlelab: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the user gave cannot be read or written
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"doodlelab: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("doodlelab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
