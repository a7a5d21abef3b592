"""Classification reports and plots: precision/recall/F1, most confused pairs, normalized confusion, the loss on a
log scale with integer epochs, 'predicted p (true)' grids, top losses, and `cnnlab predict --grid`."""

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.engine import plots
from tests.cli.conftest import run_cli

CONFUSION = [[5, 1, 0],   # rows: true a, b, c; columns: predicted
             [2, 6, 2],
             [0, 0, 4]]


def test_precision_recall_f1_by_hand():
    m = plots.precision_recall_f1(CONFUSION)
    # precision: of the predictions a / b / c, the right ones: 5/7, 6/7, 4/6; recall: 5/6, 6/10, 4/4
    assert m["precision"] == pytest.approx([5 / 7, 6 / 7, 4 / 6])
    assert m["recall"] == pytest.approx([5 / 6, 0.6, 1.0])
    p, r = 6 / 7, 0.6
    assert m["f1"][1] == pytest.approx(2 * p * r / (p + r))
    assert m["support"].tolist() == [6, 10, 4]
    empty = plots.precision_recall_f1([[0, 0], [3, 1]])  # class 0 never predicted nor present: 0, not NaN
    assert empty["precision"][0] == 0 and empty["recall"][0] == 0 and np.isfinite(empty["f1"]).all()


def test_most_confused_pairs_and_top_losses():
    assert plots.most_confused(CONFUSION, ["a", "b", "c"], 2) == [("b", "a", 2), ("b", "c", 2)]
    assert plots.most_confused([[3, 0], [0, 3]], ["a", "b"]) == []
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.99, 0.01]])
    idx, losses = plots.top_losses(probs, torch.tensor([0, 0, 1, 1]), 2)
    assert idx == [3, 1] and losses == pytest.approx([-np.log(0.01), -np.log(0.2)], rel=1e-5)


def _captured(monkeypatch):
    figs = []
    monkeypatch.setattr(plots.plt, "close", lambda fig=None: figs.append(fig))
    return figs


def test_loss_plot_is_log_scale_with_integer_epochs_and_split_names(tmp_path, monkeypatch):
    figs = _captured(monkeypatch)
    rows = [{"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.5 / e} for e in (1, 2, 3)]
    plots.plot_loss(rows, tmp_path / "loss.png", val_split="val")
    ax = figs[0].axes[0]
    assert ax.get_yscale() == "log" and "val" in ax.get_title()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "val"]
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks)
    plots.plot_loss(rows, tmp_path / "linear.png", log=False)
    assert figs[1].axes[0].get_yscale() == "linear"
    assert (tmp_path / "loss.png").stat().st_size > 1000


def test_prediction_grid_titles_are_predicted_probability_true(tmp_path, monkeypatch):
    figs = _captured(monkeypatch)
    images = np.zeros((3, 1, 8, 8), np.uint8)
    plots.plot_prediction_grid(images, [0, 1, 1], [0.91, 0.55, 0.7], ["cat", "dog"], tmp_path / "g.png",
                               true=[0, 0, None], extra=["loss 0.09", "loss 1.20", "loss 0.36"])
    axes = figs[0].axes
    assert axes[0].get_title() == "cat 0.91\n(cat)\nloss 0.09"
    assert axes[1].get_title() == "dog 0.55\n(cat)\nloss 1.20" and axes[1].title.get_color() == "red"
    assert axes[2].get_title() == "dog 0.70\nloss 0.36"  # true class unknown


def test_training_report_has_the_tables_and_plots(trained_run):
    report = (trained_run / "report.md").read_text()
    assert "| class | test accuracy | precision | recall | F1 | support |" in report
    assert "| macro average |" in report and "Most confused (test split)" in report
    for name in ("confusion.png", "confusion-normalized.png", "loss-log.png", "predictions.png", "top-losses.png",
                 "curves.png"):
        assert (trained_run / "plots" / name).stat().st_size > 1000, name
        assert f"plots/{name}" in report, name


def test_evaluate_prints_precision_recall_and_writes_normalized_confusion(capsys, trained_run, tmp_path):
    code, out, _ = run_cli(capsys, "evaluate", trained_run, "--out", tmp_path / "ev")
    assert code == 0 and "precision" in out and "most confused" in out
    assert (tmp_path / "ev" / "confusion-normalized.png").is_file()


def test_predict_grid(capsys, tmp_path, trained_run):
    from sklearn.datasets import load_digits

    d = load_digits()
    for i in range(4):
        folder = tmp_path / "photos" / str(d.target[i])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((d.images[i] * 255 / 16).astype(np.uint8)).resize((32, 32)).save(folder / f"{i}.png")
    code, out, err = run_cli(capsys, "predict", trained_run, tmp_path / "photos", "--grid", tmp_path / "grid.png")
    assert code == 0, err
    assert (tmp_path / "grid.png").stat().st_size > 1000 and f"wrote {tmp_path / 'grid.png'}" in out
    code, _, err = run_cli(capsys, "predict", trained_run, tmp_path / "photos", "--grid", tmp_path / "grid.txt")
    assert code == 2 and err.startswith("error: --grid") and "Traceback" not in err
