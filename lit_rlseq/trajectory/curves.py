"""Training curves of the offline models as files: after every epoch, a CSV row and a re-drawn PNG.

Every epoch-level metric named ``train/...`` or ``val/...`` (losses and token accuracies) goes into
``training_curves.csv`` and ``training_curves.png`` (losses left, accuracies right) in the logger's directory.
"""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


class TrainingCurves(L.Callback):
    def __init__(self, title: str = ""):
        self.title = title
        self.rows: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or trainer.log_dir is None:
            return
        metrics = {
            k.removesuffix("_epoch"): float(v) for k, v in trainer.callback_metrics.items()
            if k.startswith(("train/", "val/")) and not k.endswith("_step") and v.numel() == 1
        }
        self.rows.append({"epoch": float(trainer.current_epoch), **metrics})
        out = Path(trainer.log_dir)
        out.mkdir(parents=True, exist_ok=True)
        columns = ["epoch"] + sorted({k for row in self.rows for k in row} - {"epoch"})
        with (out / "training_curves.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(self.rows)
        self.plot(out / "training_curves.png", columns[1:], type(pl_module).__name__)

    def plot(self, path: Path, names: list[str], model_name: str) -> None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for ax, kind in zip(axes, ("loss", "acc")):
            for name in (n for n in names if kind in n.split("/")[-1]):
                points = [(r["epoch"], r[name]) for r in self.rows if name in r]
                ax.plot(*zip(*points), marker="o", markersize=3, label=name)
            ax.set_xlabel("epoch")
            ax.set_ylabel("token accuracy" if kind == "acc" else "loss")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
        fig.suptitle(self.title or model_name)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
