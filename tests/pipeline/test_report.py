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

from doodlelab.data.course import CLASSES
from doodlelab.errors import UserError
from doodlelab.pipeline.layout import RUNS, run_name
from doodlelab.pipeline.report import build_report
from doodlelab.pipeline.report.settings import FIELDS as PAGE_ONE_VARIABLES
from doodlelab.pipeline.steps import run_all
from doodlelab.pipeline.subcommands import add_parser, command

pytestmark = pytest.mark.slow

RUN_NAMES = [run_name(task, backend) for task, backend in RUNS]
QUESTIONS = [f"I.1 ({c})" for c in "abcdef"] + [f"I.2 ({c})" for c in "abc"] + \
    [f"II.1 ({c})" for c in "abcdefg"] + [f"II.2 ({c})" for c in "ab"]
# The studies of the main job and how many settings each has in a quick run, written out here: a
# study that disappears or changes its size must change this list too. In a quick run a study whose
# settings miss the quick configuration's own (hidden [32], batch 32, ...) gets it added.
QUICK_STUDIES = {"width": 6, "activation": 3, "momentum": 4, "learning_rate": 4, "batch_size": 4,
                 "epochs": 2, "augmentation": 2, "dropout": 2, "weight_decay": 2, "schedule": 2,
                 "image_tower": 3, "word_tower": 3, "shared_space": 3, "word_vectors": 3,
                 "momentum_towers": 2, "margin": 4, "align": 2, "objective": 10, "learning_rate_towers": 2}
QUICK_STUDIES["word_vectors"] += 1  # the tiny GloVe file of this test is a setting of its own


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
        with pytest.MonkeyPatch.context() as env:  # page one from nothing given, whatever this shell exports
            for variable in PAGE_ONE_VARIABLES.values():
                env.delenv(variable, raising=False)
            out = run_all(course, root / "results", quick=True, overrides=_settings(glove), workers=2)
    finally:
        _OPENED["train_images"] = _WATCHED.pop(images)
    return out, course, glove


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="doodlelab")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


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
        for file in ("config.json", "env.json", "split.npz", "history.csv", "weights.npz", "metrics.json",
                     "predictions.npz"):
            assert (out / "runs" / name / file).is_file(), (name, file)
    manifest = json.loads((out / "pipeline.json").read_text())
    assert {s["name"]: len(s["settings"]) for s in manifest["studies"]} == QUICK_STUDIES
    for name, n in QUICK_STUDIES.items():
        summary = (out / "sweep" / name / "summary.csv").read_text().splitlines()
        assert len(summary) == 1 + n
        decision = json.loads((out / "sweep" / name / "decision.json").read_text())
        names = [s["name"] for s in decision["study"]["settings"]]
        assert decision["seeds"] == 2 and decision["chosen"] in names
    for pair in ("classifier", "two_tower", "part1-vs-part2"):
        mcnemar = json.loads((out / "compare" / pair / "comparison.json").read_text())["mcnemar"]
        assert mcnemar["n"] == 25 and 0 <= mcnemar["p_value"] <= 1
        assert mcnemar["only_a"] + mcnemar["only_b"] + mcnemar["both_right"] + mcnemar["both_wrong"] == 25
    for picture in ("classifier_curves.svg", "two_tower_curves.svg", "two_tower_terms.svg",
                    "classifier_confusions.svg", "init_gradients.svg", "first_layer.png", "embeddings.svg"):
        assert (out / "figures" / picture).stat().st_size > 1000, picture
    drift = json.loads((out / "drift.json").read_text())
    assert [r["epoch"] for r in drift["float64"]] == [1, 2, 3, 4, 5]
    assert manifest["jobs"] == 2 and manifest["wall_seconds"] > 0 and manifest["cpu_seconds"] > 0
    assert json.loads((out / "gradcheck.json").read_text())["passed"]


def test_the_two_tower_terms_figure_adds_up_to_the_objective_on_both_splits(results):
    out, _, _ = results
    lines = (out / "figures" / "two_tower_terms.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert [k for k in header if k.startswith("train_")] == ["train_objective", "train_hinge_rank"]
    for line in lines[1:]:
        row = dict(zip(header, map(float, line.split(","))))
        for split in ("train", "val"):
            parts = [v for k, v in row.items() if k.startswith(f"{split}_") and k != f"{split}_objective"]
            assert sum(parts) == pytest.approx(row[f"{split}_objective"], rel=1e-6, abs=1e-9)
        assert 0 <= row["diag_active"] <= 1 and -1 <= row["diag_class_cosine"] <= 1


def test_an_objective_of_two_terms_is_plotted_term_by_term_adding_up(results, tmp_path):
    from doodlelab.config import load_config
    from doodlelab.pipeline.evidence import objective_terms
    from doodlelab.runs.folder import RunFolder

    out, _, _ = results
    row = next(json.loads(p.read_text()) for p in sorted((out / "sweep" / "points").glob("*.json"))
               if json.loads(p.read_text())["stamp"]["config"]["two_tower"]["align_weight"] == 0.5)
    cfg = load_config(None, ["two_tower.align_weight=0.5"])
    assert RunFolder(out / "runs" / "two_tower-numpy").settings.two_tower.align_weight == 0.0
    objective_terms(row["history"], "ranking hinge + 0.5 × alignment", cfg, tmp_path / "terms.svg")
    lines = (tmp_path / "terms.csv").read_text().splitlines()
    header = lines[0].split(",")
    for line in lines[1:]:
        values = dict(zip(header, map(float, line.split(","))))
        for split in ("train", "val"):
            assert values[f"{split}_hinge_rank"] + values[f"{split}_align"] == pytest.approx(
                values[f"{split}_objective"], rel=1e-6)


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
    for label in ("Name", "Student number", "Code", "Code version"):
        assert label in pages[0]
    assert pages[0].count("is missing") == 3  # nothing given, nothing invented
    references = text[text.rindex("References"):text.rindex("Every seed of every study")]
    entries = re.findall(r"^\[(\d+)\]", references, re.M)
    assert len(entries) >= 15 and entries == [str(i) for i in range(1, len(entries) + 1)]
    body = text[:text.rindex("References")]
    assert all(f"[{n}]" in body or f", {n}]" in body or f"{n}]" in body for n in entries)


# Template tells of an earlier report: "(s)" plurals, a leaked branch, precision no measurement has,
# configuration keys as words. None of them may be in the text.
LEAKS = [r"\(s\)", r"else \[", r"± 0\.0000", r"\b1\.0{8,}\b", r"\b(optim|model|train|two_tower)\.[a-z_]+\b",
         r"\bNone\b"]


def test_the_pdf_has_none_of_the_template_tells(results):
    out, _, _ = results
    text = "\n".join(_pdf_pages(out / "report" / "report.pdf"))
    body = text[:text.rindex("Every seed of every study")]  # the appendix lists commands with their keys
    found = {p: re.findall(p, body) for p in LEAKS}
    assert {p: f for p, f in found.items() if f} == {}


def test_claims_are_listed_with_a_verdict_each(results):
    out, _, _ = results
    claims = json.loads((out / "report" / "claims.json").read_text())
    ids = [c["id"] for c in claims["claims"]]
    assert len(ids) >= 40 and len(set(ids)) == len(ids)
    assert all(c["holds"] in (True, False, None) and c["statement"] for c in claims["claims"])
    assert claims["failed"] == sum(c["holds"] is False for c in claims["claims"])
    # a quick run has two seeds: the five-seed claim is visibly false
    assert {c["id"]: c["holds"] for c in claims["claims"]}["five-seeds"] is False


def _rewrite_study(folder: Path, name: str, accuracy: dict[str, list[float]]) -> None:
    """Rewrite study ``name`` of a results folder as if its settings had scored ``accuracy`` (setting ->
    per-seed validation accuracies), through the pipeline's own writer."""
    from doodlelab.pipeline.summaries import write_study

    decision = json.loads((folder / "sweep" / name / "decision.json").read_text())
    entry = decision["study"]
    done = []
    for setting, values in accuracy.items():
        for seed, value in enumerate(values):
            row = {"val_accuracy": value, "val_loss": 0.5, "val_accuracy_tta": value,
                   "best_val_accuracy": value, "best_epoch": 1, "seconds": 1.0}
            done.append((setting, seed, {"row": row, "history": [{"epoch": 1, "val_accuracy": value,
                                                                   "val_loss": 0.5}]}))
    entry = {**entry, "seeds": list(range(len(next(iter(accuracy.values())))))}
    write_study(folder / "sweep" / name, entry, done)


def _html_text(folder: Path) -> str:
    """Return the words of the folder's HTML report, tags dropped, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", "", (folder / "report" / "report.html").read_text()).split())


def _matched_rate(folder: Path) -> str:
    """Return the name of the momentum study's plain-SGD setting at momentum's step (shown, never chosen)."""
    settings = json.loads((folder / "sweep" / "momentum" / "decision.json").read_text())["study"]["settings"]
    (name,) = [s["name"] for s in settings if not s["candidate"]]
    assert name.startswith("none, rate ")
    return name


def _claims(folder: Path) -> dict[str, bool | None]:
    claims = json.loads((folder / "report" / "claims.json").read_text())["claims"]
    return {c["id"]: c["holds"] for c in claims}


FIVE = [0.0, 0.004, -0.004, 0.002, -0.002]  # seed-to-seed wobble shared by every setting (paired)


def _scores(names: list[str], means: dict[str, float]) -> dict[str, list]:
    """Five seeds per setting around ``means`` (0.8 if not given), each setting with its own order of the
    wobble, so that paired differences vary from seed to seed as measured ones do."""
    return {n: [means.get(n, 0.80) + FIVE[(s + i) % 5] for s in range(5)] for i, n in enumerate(names)}


def test_fabricated_results_flip_each_kind_of_claim(results, tmp_path, capsys, monkeypatch):
    out, _, _ = results
    for variable in PAGE_ONE_VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)
    copy = _copy(out, tmp_path)
    act = ["ReLU, He", "tanh, Glorot", "sigmoid, Glorot"]
    matched = _matched_rate(copy)
    mom = ["none", matched, "0.9", "0.9, Nesterov"]
    aug = ["none", "shifts up to 2 pixels"]
    # a clear winner that is the configuration's, a tie chosen by simplicity, a reversed order
    _rewrite_study(copy, "activation", _scores(act, {"ReLU, He": 0.90, "sigmoid, Glorot": 0.80}))
    _rewrite_study(copy, "momentum", _scores(mom, {"none": 0.70, matched: 0.88, "0.9": 0.90,
                                                   "0.9, Nesterov": 0.901}))
    _rewrite_study(copy, "augmentation", _scores(aug, {"none": 0.82, "shifts up to 2 pixels": 0.90}))
    build_report(copy)
    before = _claims(copy)
    assert before["activation-relu-chosen"] and before["activation-sigmoid-below"]
    assert before["nesterov-tied-classical"] and before["momentum-none-below"]
    assert before["augmentation-beats-none"]
    # plain SGD at momentum's step closes 90% of no momentum's gap of 20 points, and the rest is clear
    text = _html_text(copy)
    assert "it closes 90 % of the gap, so most of what momentum brings here is the larger step" in text
    assert "What is left is measurable" in text

    _rewrite_study(copy, "activation", _scores(act, {"ReLU, He": 0.80, "sigmoid, Glorot": 0.90}))  # reversed
    winner = {"none": 0.7, matched: 0.72, "0.9": 0.85, "0.9, Nesterov": 0.9}
    _rewrite_study(copy, "momentum", _scores(mom, winner))
    _rewrite_study(copy, "augmentation", _scores(aug, {"none": 0.9, "shifts up to 2 pixels": 0.9}))  # a tie
    args = _parser().parse_args(["report", str(copy), "--strict"])
    assert command(args) == 1
    after = _claims(copy)
    flipped = {"activation-relu-chosen", "activation-sigmoid-below", "nesterov-tied-classical",
               "augmentation-beats-none"}
    assert {k for k in flipped if after[k] is False} == flipped
    lines = capsys.readouterr().err.splitlines()
    assert [line for line in lines if "page 1 of the report lacks" in line] == [
        "doodlelab report: page 1 of the report lacks author, student_number, code_url: set "
        "DOODLELAB_AUTHOR, DOODLELAB_STUDENT_NUMBER, DOODLELAB_CODE_URL (or --set report.KEY=...) "
        "before handing it in"]
    for claim_id in flipped:
        assert sum(f"claim {claim_id} " in line for line in lines) == 1
    assert ("it closes 10 % of the gap, so the larger step is at most half of what momentum brings"
            in _html_text(copy))
    text = re.sub(r"\s+", " ", "\n".join(_pdf_pages(copy / "report" / "report.pdf")))
    assert text.count("not supported by these results") == json.loads(
        (copy / "report" / "claims.json").read_text())["failed"]


def test_one_seed_tells_nothing_apart_and_says_so(results, tmp_path):
    out, _, _ = results
    copy = _copy(out, tmp_path)
    mom = ["none", _matched_rate(copy), "0.9", "0.9, Nesterov"]
    _rewrite_study(copy, "momentum", {n: [v] for n, v in zip(mom, (0.5, 0.8, 0.9, 0.95))})
    build_report(copy)
    decision = json.loads((copy / "sweep" / "momentum" / "decision.json").read_text())
    assert decision["seeds"] == 1 and decision["chosen"] == "none"  # all tied: the simplest
    assert _claims(copy)["momentum-none-below"] is False
    assert "no interval from one seed" not in "\n".join(_pdf_pages(copy / "report" / "report.pdf"))[:200]


def test_pdf_numbers_are_the_files_numbers(results, tmp_path):
    out, _, _ = results
    copy = _copy(out, tmp_path)
    metrics_path = copy / "runs" / "classifier-numpy" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    assert "0.876 (95%" not in "\n".join(_pdf_pages(copy / "report" / "report.pdf"))
    metrics["accuracy"] = 0.876543
    metrics_path.write_text(json.dumps(metrics))
    text = "\n".join(_pdf_pages(build_report(copy).pdf))
    assert "0.877 (95%" in text.split("Contents")[0]  # the abstract reads the file, three digits


def test_a_training_curve_scored_on_a_sample_says_so_beside_the_curve(results, tmp_path, monkeypatch):
    from doodlelab.training import fit

    out, _, _ = results
    html = (out / "report" / "report.html").read_text()
    assert "stratified sample" not in html  # the quick run's split is below the cap: every image scored
    copy = _copy(out, tmp_path)
    n_split = sum(json.loads((copy / "data" / "data.json").read_text())["counts"]["train"].values())
    monkeypatch.setattr(fit, "TRAIN_CURVE_IMAGES", n_split - 1)
    build_report(copy)
    text = _html_text(copy)
    assert f"a fixed stratified sample of {n_split - 1:,} of its {n_split:,} images" in text


def test_html_has_mathml_and_embedded_images(results):
    out, _, _ = results
    html = (out / "report" / "report.html").read_text()
    assert html.count("<math") >= 10
    assert html.count('src="data:image/svg+xml;base64,') >= 5
    assert not re.search(r"src=\"(?!data:)", html) and "<link" not in html and "<script" not in html
    for qid in QUESTIONS:
        assert qid in html


def test_page_one_fields_come_from_settings_and_environment(results, tmp_path, monkeypatch):
    out, _, _ = results
    copy = _copy(out, tmp_path)
    parser = _parser()
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
    html = (copy / "report" / "report.html").read_text()  # Typst's HTML drops `align`d content
    assert "<h1>Classifying Quick, Draw! doodles" in html
    for shown in ("Ada Lovelace", "2025-700-123", 'href="https://example.org/doodlelab.git"'):
        assert shown in html
    with pytest.raises(UserError, match="report.autor"):
        command(parser.parse_args(["report", str(copy), "--set", "report.autor=x"]))


def test_a_report_outside_a_git_checkout_names_the_package_version(results, tmp_path):
    from doodlelab import __version__

    out, _, _ = results
    copy = _copy(out, tmp_path)
    manifest = json.loads((copy / "pipeline.json").read_text())
    manifest["git"] = {"commit": None, "dirty": None}
    (copy / "pipeline.json").write_text(json.dumps(manifest))
    first = _pdf_pages(build_report(copy).pdf)[0]
    assert f"doodlelab {__version__}" in first and "no git checkout" in first


def test_a_second_run_resumes_without_retraining(results):
    out, course, glove = results
    watched = [out / "runs" / n / "weights.npz" for n in RUN_NAMES] + [
        out / "gradcheck.json", out / "drift.json", *sorted((out / "sweep" / "points").glob("*.json"))]
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


def test_a_second_writer_of_a_results_folder_is_refused_naming_the_holder(results, tmp_path):
    from doodlelab.files.lock import FolderLock

    out, _, _ = results
    copy = _copy(out, tmp_path)
    parser = _parser()
    before = (copy / "report" / "report.pdf").read_bytes()
    with FolderLock(copy):  # another `doodlelab run` or `report` holds the folder
        with pytest.raises(UserError, match=f"being written by pid {os.getpid()} on"):
            command(parser.parse_args(["report", str(copy)]))
    assert (copy / "report" / "report.pdf").read_bytes() == before  # nothing rewritten
    assert command(parser.parse_args(["report", str(copy)])) == 0  # free again once released
