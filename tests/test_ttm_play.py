"""TTM play: agents on a real generated cooking game, trajectories in the store with tags, write_finetune."""

import json
import math

import pytest

from lit_rlseq.envs.text import make_text_env
from lit_rlseq.errors import DataError, UserError
from lit_rlseq.rollouts import RolloutStore
from lit_rlseq.ttm.agents import HumanAgent, RandomAgent, WalkthroughAgent
from lit_rlseq.ttm.play import PlayDataModule, play_rollout
from lit_rlseq.ttm.trajectory import auto_annotate, episode_trajectory, trajectory_episode
from lit_rlseq.rollouts import EpisodeTags
from lit_rlseq.ttm.write_finetune import write_finetune

pytestmark = pytest.mark.slow


@pytest.fixture
def env(cooking_cache):
    env = make_text_env("cooking_level_1", split="train", games=1, cache_dir=cooking_cache, max_actions=12)
    yield env
    env.close()


def test_teacher_play_stores_tagged_annotated_trajectories(ttm_store):
    store = RolloutStore(ttm_store)
    refs = store.episodes(run_id="0", epoch=0, partition="teacher", env="cooking_level_1", split="train",
                          agent="walkthrough")
    assert len(refs) == 2 and store.count() == 2
    meta = refs[0].tags.metadata
    assert meta["score"] == meta["max_score"] == 3 and meta["won"] and meta["goal"].startswith("You are hungry")
    assert meta["game"].endswith("seed0.z8") and meta["engine"] == "walkthrough"
    t = episode_trajectory(store.load(refs[0]))
    assert t.scores[0] == 0 and t.scores[-1] == 3 and sum(t.rewards) == 3
    assert len(t.valid_actions) == len(t.observations) == len(t) + 1
    assert "inventory" in t.valid_actions[0] and all(isinstance(a, str) for a in t.valid_actions[1])
    assert t.hindsight_summary == auto_annotate(t).hindsight_summary and t.hindsight_length[-1] > 0
    assert t.value[-1] == 1.0


def test_play_resumes_rather_than_repeats(ttm_store, cooking_cache):
    data = PlayDataModule("cooking_level_1", str(ttm_store), max_rollouts=2, game_cache=str(cooking_cache))
    assert data.already_played("walkthrough") == 2
    assert data.already_played("random") == 0


def test_store_round_trip_of_a_text_trajectory(env, tmp_path):
    t = play_rollout(env, RandomAgent(seed=1))
    tags = EpisodeTags(run_id="r", epoch=3, partition="student_test", env="cooking_level_1", split="test",
                       agent="random")
    with RolloutStore(tmp_path / "s").writer() as writer:
        writer.append(trajectory_episode(t, tags))
    store = RolloutStore(tmp_path / "s")
    (ref,) = store.episodes(partition="student_test", epoch=3)
    back = episode_trajectory(store.load(ref))
    assert back.observations == t.observations and back.actions == t.actions and back.scores == t.scores
    assert back.valid_actions == t.valid_actions and back.hindsight_summary == t.hindsight_summary
    assert [math.isnan(v) for v in back.value] == [math.isnan(v) for v in t.value]
    # the random agent only takes valid actions
    assert all(a in valid for a, valid in zip(t.actions, t.valid_actions))
    assert len(t) == 12 or t.won or t.lost


def test_human_agent_reads_actions_and_annotations(env):
    lines = iter(["/valid", "look", "/summary looked around", "/length 1", "/value 0", "inventory", "/quit"])
    printed = []
    t = play_rollout(env, HumanAgent(input_fn=lambda prompt: next(lines), print_fn=printed.append))
    assert t.actions == ["look", "inventory"]
    assert t.hindsight_summary[1] == "looked around" and t.hindsight_length[1] == 1 and t.value[1] == 0.0
    assert t.hindsight_summary[2] == ""  # a human's trajectory gets no automatic annotations
    assert any("inventory" in p for p in printed)  # /valid listed the valid actions


def test_walkthrough_agent_needs_a_walkthrough():
    with pytest.raises(UserError, match="no walkthrough"):
        WalkthroughAgent().begin("obs", {"game": "zork1.z5", "walkthrough": None})


def test_write_finetune_selects_by_tags(ttm_store, tmp_path):
    out = tmp_path / "x.jsonl"
    n = write_finetune(str(ttm_store), str(out), format="bc", allowed_agent_names=["walkthrough"], epochs=[0])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    store = RolloutStore(ttm_store)
    assert n == len(lines) == sum(r.length for r in store.episodes())
    assert lines[0]["completion"] == " action: [ inventory ]\n" and lines[0]["prompt"].startswith("goal: ")
    with pytest.raises(DataError, match="no rollouts .* match"):
        write_finetune(str(ttm_store), str(out), epochs=[7])
    with pytest.raises(DataError, match="no rollouts"):
        write_finetune(str(ttm_store), str(out), allowed_agent_names=["human"])
    with pytest.raises(UserError, match="format"):
        write_finetune(str(ttm_store), str(out), format="gpt3")


def test_bad_play_arguments(tmp_path):
    with pytest.raises(UserError, match="partition"):
        PlayDataModule("cooking_level_1", str(tmp_path), partition="students")
