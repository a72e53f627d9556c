"""What successive halving would have saved a finished main job, replayed on its own study histories.

    python benchmarks/halving_replay.py RESULTS_DIR [--at 0.33 0.5] [--json FILE]

Issue 20's second lever: stop the settings of a study that cannot win before their last
epoch. This script does not train anything. It reads a finished ``doodlelab run`` folder
(every study row's validation accuracy after every epoch, ``sweep/<study>/histories.csv``,
and each setting job's seconds in ``pipeline.json``) and asks, for each stopping point
(a fraction of the study's epochs): which settings would the rule have stopped there, how
many core-seconds would that have saved, and would any stopped setting have been chosen, or
tied with the best, at the end?

The rule replayed is the one the issue names: at epoch ``k`` the study is decided as the main
job decides it at the end (:func:`doodlelab.studies.decision.decide`: the paired 95% interval
over the seeds against the best setting), and a setting it finds below the best stops. A
setting shared by several studies (the configuration's own) stops only if every study it
belongs to stops it; a study whose settings differ in their number of
epochs (the epochs study) is never halved, as its settings' epoch ``k`` are not comparable.
A stopped setting saves ``(E - k) / E`` of its job's seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

from doodlelab.files.atomic import write_json
from doodlelab.pipeline import layout
from doodlelab.pipeline.rows import parse_job_name
from doodlelab.studies.decision import decide
from doodlelab.studies.sweep import HISTORIES_CSV


def _accuracy_by_epoch(folder: Path) -> dict[str, dict[int, dict[int, float]]]:
    """Return setting -> epoch -> seed -> validation accuracy, from a study's histories.csv."""
    out: dict[str, dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    with (folder / HISTORIES_CSV).open(newline="") as fh:
        for row in csv.DictReader(fh):
            out[row["setting"]][int(row["epoch"])][int(row["seed"])] = float(row["val_accuracy"])
    return out


def _setting_keys(manifest: dict, study: dict) -> dict[str, str]:
    """Return setting name -> the key of its seed-0 row (the name of its job, ``points/<key>+N``)."""
    keys = manifest["steps"][f"sweep/{study['name']}"]["stamp"][1]  # settings outer, seeds inner
    n = len(study["seeds"])
    return {s["name"]: keys[i * n] for i, s in enumerate(study["settings"])}


def _job_seconds(manifest: dict) -> dict[str, float]:
    return {parse_job_name(name)[0]: step["seconds"]
            for name, step in manifest["steps"].items() if name.startswith("points/")}


def replay(root: Path, fraction: float) -> dict:
    """Return what halving at ``fraction`` of each study's epochs would have stopped and saved."""
    manifest = json.loads((root / layout.MANIFEST).read_text())
    seconds = _job_seconds(manifest)
    votes: dict[str, list[bool]] = defaultdict(list)  # setting key -> stopped?, one vote per study
    at_epoch: dict[str, tuple[int, int]] = {}  # setting key -> (k, E)
    stopped_by: dict[str, list[dict]] = defaultdict(list)
    for study in manifest["studies"]:
        accuracy = _accuracy_by_epoch(layout.sweep_dir(root, study["name"]))
        keys = _setting_keys(manifest, study)
        lengths = {name: max(by_epoch) for name, by_epoch in accuracy.items()}
        if len(set(lengths.values())) != 1:
            for name in accuracy:
                votes[keys[name]].append(False)
            continue
        (epochs,) = set(lengths.values())
        k = max(1, round(fraction * epochs))
        at_k = decide([(name, by_epoch[k]) for name, by_epoch in accuracy.items()])
        at_end = {v.name: v for v in decide([(name, by_epoch[epochs])
                                              for name, by_epoch in accuracy.items()]).verdicts}
        for verdict in at_k.verdicts:
            stop = verdict.status == "below"
            votes[keys[verdict.name]].append(stop)
            at_epoch[keys[verdict.name]] = (k, epochs)
            if stop:
                end = at_end[verdict.name]
                stopped_by[keys[verdict.name]].append({
                    "study": study["name"], "setting": verdict.name, "epoch": k, "of": epochs,
                    "end_below_best": end.status == "below", "end_mean_vs_best": end.versus_best.mean})
    stopped = [key for key, v in votes.items() if all(v)]
    saved = sum(seconds[key] * (1 - at_epoch[key][0] / at_epoch[key][1]) for key in stopped)
    rows = [s for key in stopped for s in stopped_by[key]]
    return {"fraction": fraction, "stopped_settings": len(stopped), "settings": len(votes),
            "stopped": rows, "saved_core_seconds": saved, "study_core_seconds": sum(seconds.values()),
            "stopped_but_not_below_at_the_end": [r for r in rows if not r["end_below_best"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--at", type=float, nargs="+", default=[1 / 3, 1 / 2])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    out = [replay(args.results, f) for f in args.at]
    for r in out:
        print(f"halving at {r['fraction']:.2f} of the epochs: {r['stopped_settings']} of {r['settings']} "
              f"settings stop, saving {r['saved_core_seconds']:.0f} of {r['study_core_seconds']:.0f} "
              f"core-seconds of study rows; stopped but not below the best at the end: "
              f"{len(r['stopped_but_not_below_at_the_end'])}")
        for s in r["stopped"]:
            print(f"  {s['study']}: {s['setting']} at epoch {s['epoch']} of {s['of']}"
                  f"{'' if s['end_below_best'] else '  (NOT below at the end)'}")
    if args.json:
        write_json(args.json, {"results": str(args.results), "replays": out})


if __name__ == "__main__":
    main()
