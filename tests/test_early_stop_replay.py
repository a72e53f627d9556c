"""benchmarks/early_stop_replay.py: where fit's early-stopping rule stops a made-up final run."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "early_stop_replay.py"
# epoch:            1     2     3     4     5     6     7     8
VAL_ACCURACY = (0.50, 0.70, 0.80, 0.79, 0.80, 0.78, 0.81, 0.80)  # best 0.80 at 3, ties do not count
VAL_LOSS = (1.00, 0.80, 0.60, 0.61, 0.62, 0.63, 0.64, 0.59)  # best 0.60 at 3, then worse until epoch 8
SECONDS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)


def _script():
    spec = importlib.util.spec_from_file_location("early_stop_replay", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _history():
    return [{"epoch": float(e), "val_accuracy": a, "val_loss": v, "seconds": s}
            for e, (a, v, s) in enumerate(zip(VAL_ACCURACY, VAL_LOSS, SECONDS), start=1)]


@pytest.mark.parametrize(("monitor", "patience", "stops_at", "kept_epoch", "saved"), [
    ("val_accuracy", 3, 6, 3, 7.0 + 8.0),  # 4, 5 (a tie), 6 do not improve on epoch 3
    ("val_accuracy", 4, None, 7, 0.0),  # epoch 7 improves before patience runs out
    ("val_loss", 4, 7, 3, 8.0),  # 4-7 worse than epoch 3's loss; epoch 8 would have beaten it
    ("val_loss", 5, None, 8, 0.0),
])
def test_the_replay_stops_where_fits_rule_would_and_keeps_the_best_epoch(monitor, patience, stops_at,
                                                                        kept_epoch, saved):
    r = _script().replay(_history(), monitor, patience)
    assert (r["stops_at"], r["kept_epoch"], r["seconds_saved"]) == (stops_at, kept_epoch, saved)
    assert r["kept_val_accuracy"] == VAL_ACCURACY[kept_epoch - 1] and r["last_val_accuracy"] == 0.80
    assert r["seconds"] == sum(SECONDS)


def _write_run(root: Path, run: str, history: list[dict], min_delta: float | None = None) -> None:
    (root / "runs" / run).mkdir(parents=True)
    with (root / "runs" / run / "history.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["epoch", "val_accuracy", "val_loss", "seconds"])
        writer.writeheader()
        writer.writerows(history)
    if min_delta is not None:
        (root / "runs" / run / "config.json").write_text(json.dumps({"train": {"min_delta": min_delta}}))


def test_the_script_reads_every_final_run_with_its_own_min_delta(tmp_path):
    _write_run(tmp_path, "classifier-numpy", _history())
    _write_run(tmp_path, "classifier-torch", _history(), min_delta=0.05)  # 0.81 at 7 is no gain on 0.80
    (tmp_path / "pipeline.json").write_text(json.dumps({"final": {}}))
    out = tmp_path / "replay.json"
    assert _script().main([str(tmp_path), "--patience", "4", "--json", str(out)]) == 0
    replays = json.loads(out.read_text())["replays"]
    assert [(r["run"], r["monitor"]) for r in replays] == [
        ("classifier-numpy", "val_accuracy"), ("classifier-numpy", "val_loss"),
        ("classifier-torch", "val_accuracy"), ("classifier-torch", "val_loss")]
    assert replays[0]["stops_at"] is None and replays[2]["stops_at"] == 7  # epochs 4-7 gain < 0.05


def _history_file(root: Path) -> Path:
    return root / "runs" / "classifier-numpy" / "history.csv"


def _header_only(root: Path) -> None:
    _history_file(root).write_text("epoch,val_accuracy,val_loss,seconds\n")


@pytest.mark.parametrize(("spoil", "args"), [
    (lambda root: None, ["--patience", "0"]),
    (_header_only, []),
    (lambda root: _history_file(root).write_text("epoch,val_accuracy\n1,x\n"), []),
    (lambda root: (root / "pipeline.json").unlink(), ["--json", "out.json"]),
    (lambda root: _history_file(root).unlink(), []),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, spoil, args):
    _write_run(tmp_path, "classifier-numpy", _history())
    (tmp_path / "pipeline.json").write_text(json.dumps({"final": {}}))
    spoil(tmp_path)
    args = [str(tmp_path / a) if a.endswith(".json") else a for a in args]
    assert _script().main([str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("early_stop_replay: ") and "Traceback" not in err
    assert not (tmp_path / "out.json").exists()
