"""Pipelines of `lightning` stages (every pipeline in bin/): each stage is one printed command.

A fit stage owns a directory: a finished run leaves ``complete`` there (with its command and wall time) and is
skipped when the pipeline runs again; an interrupted one resumes from its ``checkpoints/last.ckpt``. A stage
whose output is one file (an evaluation's results) names it as ``result`` and is skipped once it exists.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@dataclass
class Stage:
    name: str
    command: list[str]
    directory: Path | None = None  # where `complete` and checkpoints/last.ckpt live (None: not a fit stage)
    key: str = ""  # "baseline 0", "ldd 0": how the comparison finds the stage's wall time
    result: Path | None = None  # a file the stage writes last: the stage is done once it exists


def config_args(name: str, scale: str, overlay_required: bool = True) -> list[str]:
    """``--config configs/<name>.yaml``, plus ``configs/scale/<name>_<scale>.yaml`` for a scale other than
    "small" (a missing overlay is an error unless ``overlay_required`` is False: then the base config holds)."""
    args = ["--config", str(CONFIGS / f"{name}.yaml")]
    overlay = CONFIGS / "scale" / f"{name}_{scale}.yaml"
    if scale != "small":
        if not overlay.exists() and not overlay_required:
            return args
        if not overlay.exists():
            raise SystemExit(f"no {scale}-scale settings for {name} ({overlay} is missing)")
        args += ["--config", str(overlay)]
    return args


def run_stage(stage: Stage, dry_run: bool) -> float:
    """Runs (or skips, or resumes) one stage; returns its wall time in seconds (recorded when it finished)."""
    command = list(stage.command)
    if stage.result is not None and stage.result.exists():
        print(f"== {stage.name}: done already ({stage.result})", flush=True)
        return 0.0
    marker = stage.directory / "complete" if stage.directory is not None else None
    if marker is not None:
        if marker.exists():
            print(f"== {stage.name}: done already ({marker})", flush=True)
            return float(json.loads(marker.read_text())["seconds"])
        last = stage.directory / "checkpoints" / "last.ckpt"
        if last.exists():
            print(f"== {stage.name}: resuming from {last}", flush=True)
            command += ["--ckpt_path", str(last)]
    print(f"== {stage.name}\n$ {shlex.join(command)}", flush=True)
    if dry_run:
        return 0.0
    start = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - start
    if marker is not None:
        marker.write_text(json.dumps({"command": command, "seconds": seconds}) + "\n")
    return seconds
