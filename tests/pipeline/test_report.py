"""``doodlelab run --quick`` end to end on a tiny folder (two worker processes), then the Typst report."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pypdf
import pytest

from tests.conftest import make_course_folder, need_module, write_tiny_glove

need_module("torch", "torch")
pytestmark = pytest.mark.slow  # the whole pipeline in worker processes, and the report

from doodlelab import __version__
from doodlelab.data.course import CLASSES
from doodlelab.errors import UserError
from doodlelab.pipeline.layout import RUNS, run_name
from doodlelab.pipeline.report import build_report
from doodlelab.pipeline.steps import add_parser, command, run_all, sweeps_for

RUN_NAMES = [run_name(task, backend) for task, backend in RUNS]
# The quick run's studies, written out: each study's name and the labels of its two points.
QUICK_STUDIES = {"arch_hidden": ["model.hidden=[16]", "model.hidden=[32]"],
                 "optim_lr": ["optim.lr=0.05", "optim.lr=0.1"],
                 "loss_align": ["two_tower.align_weight=0.0", "two_tower.align_weight=0.5"]}
QUESTIONS = [f"I.1 ({c})" for c in "abcdef"] + [f"I.2 ({c})" for c in "abc"] + \
    [f"II.1 ({c})" for c in "abcdefg"] + [f"II.2 ({c})" for c in "ab"]


def _settings(glove: Path) -> list[str]:
    return [f"two_tower.word_vectors={json.dumps(str(glove))}"]


# Paths whose every opening this process counts (sys.audit "open" events); an audit hook
# cannot be removed, so it is installed once and counts only while a path is listed here.
_WATCHED: dict[str, int] = {}
_OPENED: dict[str, int] = {}  # how often the fixture's pipeline opened each watched path


def _count_opens(event: str, args: tuple) -> None:
    if event == "open" and _WATCHED and isinstance(args[0], (str, bytes, Path)):
        path = os.fsdecode(args[0])
        if path in _WATCHED:
            _WATCHED[path] += 1


sys.addaudithook(_count_opens)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """(results folder, course folder, GloVe file) of one quick pipeline run on two workers; counts
    how often this process opened the training images (``_WATCHED``)."""
    root = tmp_path_factory.mktemp("pipeline")
    course = make_course_folder(root / "course")
    glove = write_tiny_glove(root / "glove.tiny.6d.txt", (*CLASSES, "zebra"))
    images = str(course / "train_images.npy")
    _WATCHED[images] = 0
    try:
        out = run_all(course, root / "results", quick=True, overrides=_settings(glove), workers=2)
    finally:
        _OPENED["train_images"] = _WATCHED.pop(images)
    return out, course, glove


def test_the_training_images_are_opened_once_by_the_pipeline_process(results):
    assert _OPENED["train_images"] == 1  # prepare() reads them once; each worker process reads its own copy


def _pdf_pages(path: Path) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(path).pages]


def _copy(out: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "results"
    shutil.copytree(out, copy)
    return copy


def test_every_output_exists(results):
    out, _, _ = results
    for name in RUN_NAMES:
        for file in ("config.json", "env.json", "split.npz", "history.csv", "weights.npz", "metrics.json"):
            assert (out / "runs" / name / file).is_file(), (name, file)
    for task in ("classifier", "two_tower"):
        assert (out / "compare" / task / "accuracy.png").stat().st_size > 1000
    manifest = json.loads((out / "pipeline.json").read_text())
    assert [s["name"] for s in manifest["sweeps"]] == list(QUICK_STUDIES)
    for name, labels in QUICK_STUDIES.items():
        rows = (out / "sweep" / name / "summary.csv").read_text().splitlines()[1:]
        assert sorted(row.split(",")[1] for row in rows) == labels  # one row per point
        assert {row.split(",")[2] for row in rows} == {"2"}  # each over 2 seeds
    # 3 studies x 2 points x 2 seeds; the configuration's own row (hidden [32], lr 0.05) is shared
    # by two studies, trained once, and labelled in each with that study's setting
    assert len(list((out / "sweep" / "points").glob("*.json"))) == 10
    assert "term_align" in (out / "sweep" / "loss_align" / "terms.csv").read_text().splitlines()[0]
    for picture in ("first_layer", "embeddings", "two_tower_terms"):
        assert (out / "figures" / f"{picture}.png").stat().st_size > 1000
    assert manifest["jobs"] == 2 and manifest["wall_seconds"] > 0 and manifest["cpu_seconds"] > 0
    assert json.loads((out / "gradcheck.json").read_text())["passed"]


def test_the_four_runs_share_one_split(results):
    out, _, _ = results
    splits = {(out / "runs" / name / "split.npz").read_bytes() for name in RUN_NAMES}
    assert splits == {(out / "data" / "split.npz").read_bytes()}


def test_pdf_answers_every_question_with_references_and_page_one_fields(results):
    out, _, _ = results
    pages = _pdf_pages(out / "report" / "report.pdf")
    text = "\n".join(pages)
    for qid in QUESTIONS:
        assert re.search(rf"^{re.escape(qid)} ", text, re.M), qid
    for label in ("Author", "Student number", "Code", "Date"):
        assert label in pages[0]
    assert pages[0].count("is missing") == 3  # nothing given, nothing invented
    references = text[text.rindex("References"):]
    entries = re.findall(r"^\[(\d+)\]", references, re.M)
    assert len(entries) >= 6 and entries == [str(i) for i in range(1, len(entries) + 1)]
    body = text[:text.rindex("References")]
    assert all(f"[{n}]" in body for n in entries)  # every entry is cited in the text
    assert len(set(re.findall(r"Figure\s(\d+):", text))) >= 12


def test_pdf_numbers_are_the_files_numbers(results, tmp_path):
    out, _, _ = results
    copy = _copy(out, tmp_path)
    metrics_path = copy / "runs" / "classifier-numpy" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    assert "0.8765" not in "\n".join(_pdf_pages(copy / "report" / "report.pdf"))
    metrics["accuracy"] = 0.876543
    metrics_path.write_text(json.dumps(metrics))
    _, pdf = build_report(copy)
    text = "\n".join(_pdf_pages(pdf))
    assert "0.8765" in text.split("Contents")[0]  # the abstract reads the file
    torch_acc = json.loads((copy / "runs" / "classifier-torch" / "metrics.json").read_text())["accuracy"]
    assert f"{0.876543 - torch_acc:+.4f}" in text  # the comparison's difference too


def test_html_has_mathml_and_embedded_images(results):
    out, _, _ = results
    html = (out / "report" / "report.html").read_text()
    assert html.count("<math") >= 10 and "<mfrac>" in html
    assert html.count('src="data:image/png;base64,') >= 12
    assert not re.search(r"src=\"(?!data:)", html) and "<link" not in html and "<script" not in html
    for qid in QUESTIONS:
        assert qid in html


def test_page_one_fields_come_from_settings_and_environment(results, tmp_path, monkeypatch):
    out, _, _ = results
    copy = _copy(out, tmp_path)
    parser = argparse.ArgumentParser(prog="doodlelab")
    add_parser(parser.add_subparsers(dest="command", required=True))
    config = tmp_path / "mine.toml"
    config.write_text('[report]\nstudent_number = "2025-700-123"\n')
    monkeypatch.setenv("DOODLELAB_CODE_URL", "https://example.org/doodlelab.git")
    args = parser.parse_args(["report", str(copy), "--config", str(config),
                              "--set", "report.author=Ada Lovelace"])
    assert command(args) == 0
    first = _pdf_pages(copy / "report" / "report.pdf")[0]
    assert "Ada Lovelace" in first and "2025-700-123" in first
    assert "https://example.org/doodlelab.git" in first
    assert "missing" not in first
    with pytest.raises(UserError, match="report.autor"):
        command(parser.parse_args(["report", str(copy), "--set", "report.autor=x"]))


def test_page_one_says_which_code_made_the_results_with_and_without_git(results, tmp_path):
    out, _, _ = results
    copy = _copy(out, tmp_path)
    manifest = json.loads((copy / "pipeline.json").read_text())
    manifest["git"] = {"commit": "0123abcd" * 5, "dirty": True}
    (copy / "pipeline.json").write_text(json.dumps(manifest))
    build_report(copy)
    first = _pdf_pages(copy / "report" / "report.pdf")[0]
    assert f"doodlelab {__version__}, commit {'0123abcd' * 5} (with local changes)" in first
    manifest["git"] = {"commit": None, "dirty": None}  # an installed package, not a git checkout
    (copy / "pipeline.json").write_text(json.dumps(manifest))
    build_report(copy)
    first = _pdf_pages(copy / "report" / "report.pdf")[0]
    assert f"doodlelab {__version__}, installed package (not a git checkout)" in first


def test_a_second_run_resumes_without_retraining(results):
    out, course, glove = results
    watched = [out / "runs" / n / "weights.npz" for n in RUN_NAMES] + [
        out / "gradcheck.json", *sorted((out / "sweep" / "points").glob("*.json"))]
    before = {p: p.stat().st_mtime_ns for p in watched}
    run_all(course, out, quick=True, overrides=_settings(glove), workers=1)
    assert {p: p.stat().st_mtime_ns for p in watched} == before
    manifest = json.loads((out / "pipeline.json").read_text())
    assert [k for k, v in manifest["this_invocation"].items() if v == "ran"] == ["report"]

    # an interrupted run (no metrics.json) and a lost study row are trained again, and only those
    (out / "runs" / "classifier-torch" / "metrics.json").unlink()
    watched[-1].unlink()
    run_all(course, out, quick=True, overrides=_settings(glove), workers=1)
    changed = {p for p in watched if p.stat().st_mtime_ns != before.get(p)}
    assert changed == {out / "runs" / "classifier-torch" / "weights.npz", watched[-1]}


def test_other_settings_are_refused_without_overwrite(results):
    out, course, glove = results
    weights = out / "runs" / "classifier-numpy" / "weights.npz"
    before = weights.stat().st_mtime_ns, (out / "pipeline.json").read_bytes()
    with pytest.raises(UserError, match="--overwrite"):
        run_all(course, out, quick=True, overrides=[*_settings(glove), "train.epochs=3"])
    with pytest.raises(UserError, match="--overwrite"):  # another seed: another split
        run_all(course, out, quick=True, overrides=[*_settings(glove), "train.seed=1"])
    with pytest.raises(UserError, match="--jobs"):
        run_all(course, out, quick=True, overrides=_settings(glove), workers=0)
    assert (weights.stat().st_mtime_ns, (out / "pipeline.json").read_bytes()) == before
    assert not list(out.rglob(".*.tmp"))


def test_report_of_a_folder_missing_a_run_is_one_line(results, tmp_path):
    out, _, _ = results
    copy = _copy(out, tmp_path)
    shutil.rmtree(copy / "runs" / "two_tower-torch")
    with pytest.raises(UserError) as info:
        build_report(copy)
    assert "two_tower-torch" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UserError, match="not a results folder"):
        build_report(tmp_path / "nowhere")


def test_the_loss_study_covers_every_objective_with_three_seeds():
    from doodlelab.config import load_config
    from doodlelab.nn.embedding_losses import OBJECTIVES
    from doodlelab.studies.sweep import combinations

    cfg = load_config()
    study = [s for s in sweeps_for(cfg) if s[0].startswith("loss_") and "two_tower.loss" in s[2]]
    assert {grid["two_tower.loss"][0] for _, _, grid, _, _ in study} == set(OBJECTIVES)
    points = []
    for _, model, grid, _, seeds in study:
        assert model == "two_tower" and len(seeds) >= 3
        points += [settings for settings, _ in combinations(cfg, grid)]  # every point is valid
    assert len(points) == 11
    t = cfg.two_tower  # the default objective is a point of the study
    default = {"two_tower.loss": t.loss, "two_tower.margin": t.margin,
               "two_tower.align_weight": t.align_weight}
    assert default in points


def test_a_second_writer_of_a_results_folder_is_refused_naming_the_holder(results, tmp_path):
    from doodlelab.files.lock import FolderLock

    out, _, _ = results
    copy = _copy(out, tmp_path)
    parser = argparse.ArgumentParser(prog="doodlelab")
    add_parser(parser.add_subparsers(dest="command", required=True))
    before = (copy / "report" / "report.pdf").read_bytes()
    with FolderLock(copy):  # another `doodlelab run` or `report` holds the folder
        with pytest.raises(UserError, match=f"being written by pid {os.getpid()} on"):
            command(parser.parse_args(["report", str(copy)]))
    assert (copy / "report" / "report.pdf").read_bytes() == before  # nothing rewritten
    assert command(parser.parse_args(["report", str(copy)])) == 0  # free again once released
