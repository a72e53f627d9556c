"""``doodlelab run --quick`` end to end on a tiny folder, then the report built from its files."""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from doodlelab.cli import main
from doodlelab.data.course import CLASSES
from doodlelab.errors import UserError
from doodlelab.nn.embedding_losses import OBJECTIVES
from doodlelab.pipeline import RUNS, add_parser, command, run_all, run_name, sweeps_for
from doodlelab.report import build_report
from doodlelab.report.build import fmt_metric, fmt_sci
from tests.conftest import make_course_folder

RUN_NAMES = [run_name(task, backend) for task, backend in RUNS]


def _glove(path: Path) -> Path:
    """A GloVe text file holding the five class names (and a distractor), 6-d."""
    rng = np.random.default_rng(0)
    path.write_text("".join(f"{w} " + " ".join(f"{v:.5f}" for v in rng.normal(size=6)) + "\n"
                            for w in (*CLASSES, "zebra")))
    return path


def _settings(glove: Path) -> list[str]:
    return [f"two_tower.word_vectors={json.dumps(str(glove))}"]


# Paths whose every opening this process counts (sys.audit "open" events); an audit hook
# cannot be removed, so it is installed once and counts only while a path is listed here.
_WATCHED: dict[str, int] = {}


def _count_opens(event: str, args: tuple) -> None:
    if event == "open" and _WATCHED and isinstance(args[0], (str, bytes, Path)):
        path = os.fsdecode(args[0])
        if path in _WATCHED:
            _WATCHED[path] += 1


sys.addaudithook(_count_opens)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """(results folder, course folder, GloVe file) of one ``doodlelab run --quick``, and how many
    times it opened the training images file."""
    root = tmp_path_factory.mktemp("pipeline")
    course = make_course_folder(root / "course")
    glove = _glove(root / "glove.tiny.6d.txt")
    images = str(course / "train_images.npy")
    _WATCHED[images] = 0
    try:
        code = main(["run", "--quick", "--data", str(course), "--out", str(root / "results"),
                     *(arg for s in _settings(glove) for arg in ("--set", s))])
    finally:
        opened = _WATCHED.pop(images)
    assert code == 0
    return root / "results", course, glove, opened


def test_the_training_images_are_opened_once(results):
    *_, opened = results
    assert opened == 1  # prepare() reads them once; every step gets the arrays


def _html(out: Path) -> str:
    return (out / "report" / "report.html").read_text()


def test_every_output_exists(results):
    out, *_ = results
    for name in RUN_NAMES:
        for file in ("config.json", "env.json", "split.npz", "history.csv", "weights.npz", "metrics.json"):
            assert (out / "runs" / name / file).is_file(), (name, file)
    for name in ("two_tower-numpy", "two_tower-torch"):
        assert (out / "runs" / name / "class_vectors.npz").is_file()
    for task in ("classifier", "two_tower"):  # numpy (a) against torch (b), from their metrics.json
        compare = json.loads((out / "compare" / task / "metrics.json").read_text())
        a, b = (json.loads((out / "runs" / f"{task}-{side}" / "metrics.json").read_text())
                for side in ("numpy", "torch"))
        rows = {r["metric"]: r for r in compare["metrics"]}
        assert (rows["accuracy"]["a"], rows["accuracy"]["b"]) == (a["accuracy"], b["accuracy"])
        assert rows["accuracy"]["difference"] == pytest.approx(b["accuracy"] - a["accuracy"])
        assert rows["rabbit.f1"]["a"] == a["per_class"]["rabbit"]["f1"]
        assert (compare["runs"]["a"]["backend"], compare["runs"]["b"]["backend"]) == ("numpy", "torch")
        assert compare["curves"]["epochs_compared"] == 2
        assert (out / "compare" / task / "accuracy.png").stat().st_size > 1000
    # Each sweep asks one question: its grid points are the summary's labels, each trained once.
    for sweep, labels in (("lr", {"optim.lr=0.02", "optim.lr=0.1"}),
                          ("hidden", {"model.hidden=[16]", "model.hidden=[64]"}),
                          ("two_tower_align", {"two_tower.align_weight=0.0"})):
        with open(out / "sweep" / sweep / "summary.csv") as fh:
            summary = list(csv.DictReader(fh))
        assert {r["label"] for r in summary} == labels, sweep
        assert all(r["seeds"] == "1" for r in summary)
        means = [float(r["val_accuracy_mean"]) for r in summary]
        assert means == sorted(means, reverse=True)
    for sweep in ("loss_hinge_rank_align", *(f"loss_{name}" for name in OBJECTIVES)):
        assert (out / "sweep" / sweep / "summary.csv").is_file()
    histories = (out / "sweep" / "loss_align_only" / "histories.csv").read_text().splitlines()
    assert {"term_align_only", "diag_active", "diag_class_cosine"} <= set(histories[0].split(","))
    gradcheck = json.loads((out / "gradcheck.json").read_text())
    assert gradcheck["passed"] and gradcheck["classifier"]["batch"]["source"] == "data"
    assert {row["param"] for row in gradcheck["classifier"]["float32"]} >= {"0.weight", "0.bias"}
    data = json.loads((out / "data" / "data.json").read_text())
    assert sum(data["counts"]["train"].values()) + sum(data["counts"]["validation"].values()) == 60
    manifest = json.loads((out / "pipeline.json").read_text())
    assert manifest["quick"] and manifest["commands"][0].startswith("doodlelab run")
    for config in (json.loads((out / "runs" / n / "config.json").read_text()) for n in RUN_NAMES):
        assert config["train"]["epochs"] == 2 and config["train"]["seed"] == 0


def test_the_four_runs_share_one_split(results):
    out, *_ = results
    splits = {(out / "runs" / name / "split.npz").read_bytes() for name in RUN_NAMES}
    assert len(splits) == 1 and (out / "data" / "split.npz").read_bytes() in splits


def test_html_reports_the_numbers_of_the_files(results):
    out, *_ = results
    html = _html(out)
    for name in RUN_NAMES:
        accuracy = json.loads((out / "runs" / name / "metrics.json").read_text())["accuracy"]
        # the summary row of the run holds its test accuracy, formatted as the report formats it
        cell = re.escape(fmt_metric(accuracy))
        assert re.search(rf"<td>{re.escape(name)}</td><td class=\"num\">{cell}</td>", html), name
    gradcheck = json.loads((out / "gradcheck.json").read_text())
    for dtype in ("float64", "float32"):
        for row in gradcheck["classifier"][dtype]:
            assert fmt_sci(row["max_abs_diff"]) in html
        assert fmt_sci(gradcheck["classifier"]["optimizer"][dtype]["max_abs_param_diff"]) in html
    assert "term_hinge_rank" in html and "term_align" in html  # the objective's terms, one panel each
    assert html.count("data:image/png;base64,") >= 15
    assert not re.search(r"(src|href)=\"(https?:|//|file:)", html) and "<link" not in html  # self-contained
    split_hash = hashlib.sha256((out / "runs" / "classifier-numpy" / "split.npz").read_bytes()).hexdigest()
    assert split_hash in html


def test_pdf_is_a_pdf_with_several_pages(results):
    out, *_ = results
    pdf = (out / "report" / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    pages = len(re.findall(rb"/Type\s*/Page(?!s)\b", pdf))
    assert pages >= 6


def test_a_second_run_resumes_without_retraining(results):
    out, course, glove, _ = results
    watched = [out / "runs" / n / "weights.npz" for n in RUN_NAMES] + [
        out / "gradcheck.json", out / "sweep" / "lr" / "summary.csv"]
    before = {p: p.stat().st_mtime_ns for p in watched}
    run_all(course, out, quick=True, overrides=_settings(glove))
    assert {p: p.stat().st_mtime_ns for p in watched} == before
    manifest = json.loads((out / "pipeline.json").read_text())
    assert set(manifest["this_invocation"].values()) == {"reused", "ran"}
    assert [k for k, v in manifest["this_invocation"].items() if v == "ran"] == ["report"]

    # an interrupted run (no metrics.json) is trained again, and only that one
    (out / "runs" / "classifier-torch" / "metrics.json").unlink()
    run_all(course, out, quick=True, overrides=_settings(glove))
    after = {p: p.stat().st_mtime_ns for p in watched}
    changed = {p.parent.name for p in watched if after[p] != before[p]}
    assert changed == {"classifier-torch"}
    assert (out / "runs" / "classifier-torch" / "metrics.json").is_file()


def test_other_settings_are_refused_without_overwrite(results):
    out, course, glove, _ = results
    weights = out / "runs" / "classifier-numpy" / "weights.npz"
    before = weights.stat().st_mtime_ns, (out / "pipeline.json").read_bytes()
    with pytest.raises(UserError, match="--overwrite"):
        run_all(course, out, quick=True, overrides=[*_settings(glove), "train.epochs=3"])
    with pytest.raises(UserError, match="--overwrite"):  # another seed: another split
        run_all(course, out, quick=True, overrides=[*_settings(glove), "train.seed=1"])
    assert (weights.stat().st_mtime_ns, (out / "pipeline.json").read_bytes()) == before
    assert not list(out.rglob(".*.tmp"))


def test_report_of_a_folder_missing_a_run_is_one_line(results, tmp_path):
    out, *_ = results
    copy = tmp_path / "results"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "runs" / "two_tower-torch")
    with pytest.raises(UserError) as info:
        build_report(copy)
    assert "two_tower-torch" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UserError, match="not a results folder"):
        build_report(tmp_path / "nowhere")


def test_report_subcommand_rebuilds_from_files(results, capsys):
    out, *_ = results
    parser = argparse.ArgumentParser(prog="doodlelab")
    add_parser(parser.add_subparsers(dest="command", required=True))
    html = out / "report" / "report.html"
    html.unlink()
    assert command(parser.parse_args(["report", str(out)])) == 0
    assert html.is_file() and "report.pdf" in capsys.readouterr().out
    args = parser.parse_args(["run", "--quick", "--out", "x", "--set", "train.epochs=1"])
    assert args.quick and args.overrides == ["train.epochs=1"] and args.out == Path("x")


def test_the_loss_study_covers_every_objective_with_three_seeds():
    from doodlelab.config import load_config
    from doodlelab.studies.sweep import combinations

    cfg = load_config()
    study = [s for s in sweeps_for(cfg) if s[0].startswith("loss_")]
    assert {grid["two_tower.loss"][0] for _, _, grid, _, _ in study} == set(OBJECTIVES)
    points = []
    for _, model, grid, _, seeds in study:
        assert model == "two_tower" and len(seeds) >= 3 and grid["train.epochs"] == [30]
        points += [settings for settings, _ in combinations(cfg, grid)]  # every point is valid
    assert len(points) == 11
    t = cfg.two_tower  # the default objective is a point of the study
    assert {"two_tower.loss": t.loss, "two_tower.margin": t.margin, "two_tower.align_weight": t.align_weight,
            "train.epochs": 30} in points
