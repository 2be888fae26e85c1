"""`lightning collect`: recording episodes into a store, topping it up, surviving a kill."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lit_rlseq.cli import run_cli
from lit_rlseq.envs.rtfm import rtfm_vocabulary
from lit_rlseq.rollouts import RolloutStore

ROOT = Path(__file__).resolve().parents[1]
COLLECT = str(ROOT / "configs" / "ldd_rtfm_collect.yaml")


def collect(store: Path, episodes: int, *extra: str) -> None:
    run_cli(["collect", "--config", COLLECT, f"--data.init_args.store={store}",
             f"--data.init_args.episodes={episodes}", "--data.init_args.num_envs=8",
             "--data.init_args.episodes_per_batch=10", "--trainer.enable_progress_bar=false", *extra])


def test_collect_records_tagged_complete_episodes_and_tops_up(tmp_path):
    store_path = tmp_path / "demos"
    collect(store_path, 25)
    store = RolloutStore(store_path)
    refs = store.episodes(run_id="rtfm_expert", partition="teacher")
    assert len(refs) == 25
    assert store.metadata["env"] == "rtfm:groups_simple_stationary"
    assert store.metadata["vocab_fingerprint"] == rtfm_vocabulary().fingerprint()
    for ref in refs[:10]:
        episode = store.load(ref)
        rewards = episode.fields["reward"]
        assert episode.fields["obs/name"].shape == (ref.length + 1, 6, 6, 1, 8)
        assert rewards.sum() == pytest.approx(ref.tags.metadata["return"], abs=1e-4)
        assert ref.tags.metadata["success"] == (rewards[-1] == 1.0)
        assert ref.tags.agent == "rtfm_scripted_expert" and ref.tags.split == "train"
    assert np.mean([r.tags.metadata["success"] for r in refs]) > 0.9  # the expert wins S1

    collect(store_path, 25)  # nothing missing: nothing added
    assert RolloutStore(store_path).count(run_id="rtfm_expert") == 25
    collect(store_path, 40)  # top up to 40, with new seeds (no repeated episodes)
    store = RolloutStore(store_path)
    assert store.count(run_id="rtfm_expert") == 40
    first_obs = {store.load(r).fields["obs/name"][0].tobytes() for r in store.episodes()}
    assert len(first_obs) == 40


@pytest.mark.slow
def test_killed_collection_keeps_what_it_wrote_and_resumes(tmp_path):
    store_path = tmp_path / "demos"
    command = [sys.executable, "-m", "lit_rlseq", "collect", "--config", COLLECT,
               f"--data.init_args.store={store_path}", "--data.init_args.episodes=3000",
               "--data.init_args.num_envs=8", "--data.init_args.episodes_per_batch=50",
               "--trainer.enable_progress_bar=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        if store_path.exists() and any(store_path.glob("shard-*.h5")) and RolloutStore(store_path).count() >= 60:
            break
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    written = RolloutStore(store_path).count()
    assert 60 <= written < 3000  # killed mid-way, with episodes on disk

    collect(store_path, written + 30)  # resume in-process, a smaller target to keep the test short
    store = RolloutStore(store_path)
    assert store.count() == written + 30 and len(store.shards) == 2
    for ref in store.episodes():  # every episode, from both the killed and the resumed writer, reads intact
        assert store.load(ref).fields["reward"].sum() == pytest.approx(ref.tags.metadata["return"], abs=1e-4)
