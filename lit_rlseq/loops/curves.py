"""Learning curves as files: after every evaluation, a CSV row and a re-drawn PNG, against frames.

TensorBoard shows the same metrics against steps; the PNG is for reading a run at a glance (and for papers),
the CSV for comparing runs (bin/ pipelines read it). Rows from before a resume are kept.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import lightning as L
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FRAMES = "eval/frames"


def read_curve(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with path.open() as f:
        return [{k: float(v) if v != "" else math.nan for k, v in row.items()} for row in csv.DictReader(f)]


def write_curve(path: Path, rows: list[dict[str, float]]) -> None:
    columns = [FRAMES] + sorted({k for row in rows for k in row} - {FRAMES})
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


def plot_curve(rows: list[dict[str, float]], path: Path, title: str) -> None:
    names = sorted({k for row in rows for k in row if k.endswith(("/success", "/return"))})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, suffix in zip(axes, ("/success", "/return")):
        for name in (n for n in names if n.endswith(suffix)):
            points = [(r[FRAMES], r[name]) for r in rows if not math.isnan(r.get(name, math.nan))]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o", markersize=3, label=name.removesuffix(suffix))
        ax.set_xlabel("frames")
        ax.set_ylabel(suffix[1:])
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


class LearningCurve(L.Callback):
    """Writes ``learning_curve.csv`` and ``learning_curve.png`` into the logger's directory (rank 0 only).

    A row is written at the end of every training epoch: the frames so far, the epoch's training-episode
    metrics, and the evaluation metrics if an evaluation ran in this epoch.
    """

    def __init__(self, title: str | None = None):
        self.title = title
        self._evaluation: dict[str, float] = {}

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._evaluation = _scalars(trainer, "eval/")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        evaluation, self._evaluation = self._evaluation, {}
        if not trainer.is_global_zero:
            return
        row = {**_scalars(trainer, "train/"), **evaluation, FRAMES: float(pl_module.frames)}
        root = trainer.logger.log_dir if trainer.logger is not None and trainer.logger.log_dir else None
        directory = Path(root or trainer.default_root_dir)
        directory.mkdir(parents=True, exist_ok=True)
        csv_path = directory / "learning_curve.csv"
        rows = [r for r in read_curve(csv_path) if r[FRAMES] < row[FRAMES]] + [row]
        write_curve(csv_path, rows)
        plot_curve(rows, directory / "learning_curve.png", self.title or type(pl_module).__name__)


def _scalars(trainer: L.Trainer, prefix: str) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(prefix) and v.numel() == 1}
