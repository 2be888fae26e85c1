"""The ALFWorld adapter: SILG's layout and game selection on synthetic folders made here, SILG's observation
of a TextWorld game played for real on a tiny game generated here (not ALFWorld data)."""

import json

import numpy as np
import pytest

from lit_rlseq.envs.alfworld import SILGTextWorldVectorEnv, collect_games, read_first_description, split_feedback
from lit_rlseq.envs.registry import make_vector_env
from lit_rlseq.errors import DataError, MissingArtifactError, UserError

ALFWORLD_START = """-= Welcome to TextWorld, ALFRED! =-

You are in the middle of a room. Looking quickly around you, you see a cabinet 4, a countertop 1, and a toilet 1.

Your task is to: put some spraybottle on toilet."""


def tokenizer(words=("[PAD]", "[UNK]", "put", "some", "spraybottle", "on", "toilet", "feedback", "history")):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def test_silg_reads_the_first_description_and_feedback():
    goal, feedback, scene = read_first_description(ALFWORLD_START)
    assert goal == "put some spraybottle on toilet."
    assert feedback.startswith("you are in the middle of a room. looking quickly around you, ")
    assert "you see" not in feedback and scene == ["cabinet 4", "countertop 1", "toilet 1"]
    assert split_feedback("On the cabinet 4, you see a spraybottle 2.") == ("on the cabinet 4, ", ["spraybottle 2"])
    with pytest.raises(DataError, match="empty"):
        read_first_description("\n \n")


def make_layout(root, trials):
    """trials: (relative folder, task_type or None for no traj_data, solvable or None for no game file)."""
    data = root / "cache" / "alfworld"
    (data / "logic").mkdir(parents=True)
    (data / "logic" / "alfred.pddl").write_text("(define (domain alfred))")
    (data / "logic" / "alfred.twl2").write_text("grammar")
    (root / "cache" / "tokenizer").mkdir()
    tokenizer().save(str(root / "cache" / "tokenizer" / "tokenizer.json"))
    for folder, task_type, solvable in trials:
        trial = data / "json_2.1.1" / folder
        trial.mkdir(parents=True)
        if task_type is not None:
            (trial / "traj_data.json").write_text(json.dumps({"task_type": task_type}))
        if solvable is not None:
            (trial / "game.tw-pddl").write_text(json.dumps({"solvable": solvable, "pddl_problem": "..."}))
    return root


def test_games_are_chosen_as_alfworld_chooses_them(tmp_path):
    root = make_layout(
        tmp_path,
        [
            ("train/pick_and_place_simple-Mug-None-Shelf-1/trial_1", "pick_and_place_simple", True),
            ("train/pick_heat_then_place_in_recep-Egg-None-Fridge-2/trial_1", "pick_heat_then_place_in_recep", True),
            ("train/pick_and_place_simple-Mug-None-Shelf-3/trial_2", "pick_and_place_simple", False),  # unsolvable
            ("train/pick_and_place_simple-AppleSliced-None-Shelf-4/trial_1", "pick_and_place_simple", True),
            ("train/pick_and_place_with_movable_recep-Pen-Bowl-Desk-5/trial_1", "pick_and_place_simple", True),
            ("train/some_other_task-Pen-None-Desk-6/trial_1", "some_other_task", True),
            ("train/pick_cool_then_place_in_recep-Apple-None-Fridge-7/trial_1", "pick_cool_then_place_in_recep", None),
            ("valid_seen/look_at_obj_in_light-Book-None-Lamp-8/trial_1", "look_at_obj_in_light", True),
        ],
    )
    train = collect_games(root, "train")
    assert [g.parent.parent.name for g in train] == [
        "pick_and_place_simple-Mug-None-Shelf-1",
        "pick_heat_then_place_in_recep-Egg-None-Fridge-2",
    ]
    assert [g.name for g in collect_games(root, "test_id")] == ["game.tw-pddl"]
    with pytest.raises(MissingArtifactError, match="valid_unseen"):
        collect_games(root, "test_od")


def test_missing_or_wrong_data_is_explained(tmp_path):
    with pytest.raises(MissingArtifactError) as error:
        collect_games(tmp_path, "train")
    for needed in ("json_2.1.1/train", "alfred.pddl", "alfred.twl2", "tokenizer.json", "alfworld-download"):
        assert needed in str(error.value)
    with pytest.raises(UserError, match="unknown ALFWorld split 'valid'"):
        collect_games(tmp_path, "valid")
    empty = make_layout(tmp_path / "empty", [("train/x/trial_1", "pick_and_place_simple", False)])
    with pytest.raises(DataError, match="no playable ALFWorld games"):
        collect_games(empty, "train")
    broken = make_layout(tmp_path / "broken", [("train/x/trial_1", "pick_and_place_simple", True)])
    (broken / "cache/alfworld/json_2.1.1/train/x/trial_1/traj_data.json").write_text("{not json")
    with pytest.raises(DataError, match="traj_data.json is not readable JSON"):
        collect_games(broken, "train")
    with pytest.raises(UserError, match="option root"):
        make_vector_env("alfworld:train", num_envs=1)


def test_playing_alfworld_games_needs_the_alfworld_package(tmp_path):
    try:
        import alfworld  # noqa: F401

        pytest.skip("alfworld is installed here")
    except ImportError:
        pass
    root = make_layout(tmp_path, [("train/x/trial_1", "pick_and_place_simple", True)])
    with pytest.raises(UserError, match="pip install alfworld"):
        make_vector_env("alfworld:train", num_envs=1, root=str(root))


@pytest.fixture(scope="module")
def tiny_game(tmp_path_factory):
    """A real TextWorld game (two rooms, one-step quest), compiled here; and its winning commands."""
    import textworld
    from textworld.generator import compile_game, make_game

    options = textworld.GameOptions()
    options.seeds = 1
    options.nb_rooms, options.nb_objects, options.quest_length = 2, 3, 1
    options.path = str(tmp_path_factory.mktemp("tw") / "tiny.z8")
    game = make_game(options)
    return compile_game(game, options), game.metadata.get("walkthrough") or game.main_quest.commands


@pytest.mark.slow
def test_a_textworld_game_through_silgs_observation(tiny_game):
    path, walkthrough = tiny_game
    env = SILGTextWorldVectorEnv([path], tokenizer(), num_envs=1, max_steps=50, seed=0, max_actions=20)
    obs, _ = env.reset()
    assert env.observation_space.contains(obs) and env.metadata["autoreset_mode"].name == "SAME_STEP"
    commands = env.commands(0)
    assert "look" not in commands and obs["valid"][0].sum() == len(commands) > 0
    assert (obs["command_len"][0, : len(commands)] > 0).all() and obs["text_len"][0] > 0

    obs, reward, terminated, truncated, _ = env.step(np.array([19]))  # not offered: plays "look"
    assert not terminated[0] and not truncated[0] and reward[0] == pytest.approx(1e-4)  # a new text
    assert env._episode[0]["history"][0].strip().startswith("-= ")  # the room, lower-cased, up to "you see"
    for step, command in enumerate(walkthrough):
        action = env.commands(0).index(command)
        obs, reward, terminated, truncated, info = env.step(np.array([action]))
    assert terminated[0] and not truncated[0] and info["success"][0] and reward[0] >= 1.0
    assert info["_final_obs"][0] and env.single_observation_space.contains(info["final_obs"][0])
    assert env._episode[0]["steps"] == 0  # the same step started a new episode

    limited = SILGTextWorldVectorEnv([path], tokenizer(), num_envs=1, max_steps=1, seed=0)
    limited.reset()
    _, reward, terminated, truncated, info = limited.step(np.array([59]))
    assert truncated[0] and not terminated[0] and reward[0] == -1.0 and not info["success"][0]
    env.close()
    limited.close()


@pytest.mark.slow
def test_the_text_grid_view_shows_objects_commands_and_text(tiny_game):
    from lit_rlseq.envs.alfworld import text_grid_view

    path, walkthrough = tiny_game
    silg = SILGTextWorldVectorEnv([path], tokenizer(), num_envs=1, max_steps=50, seed=0, max_actions=20)
    env = text_grid_view(silg)
    obs, _ = env.reset()
    assert env.observation_space.contains(obs) and obs["name"].shape == (1, 40, 3, 1, 11)
    vocab, commands = env.vocab, silg.commands(0)
    # row k of column 2: <action_k>, then the command's words (as the tokenizer reads them; [UNK] if unknown)
    for k, command in enumerate(commands):
        words = vocab.decode(obs["name"][0, k, 2, 0, : obs["name_len"][0, k, 2, 0]].tolist())
        assert words[0] == f"<action_{k}>" and len(words) == 1 + len(tokenizer().encode(command).ids)
    assert obs["name_len"][0, len(commands):, 2].sum() == 0 and obs["valid"][0].sum() == len(commands)
    assert vocab.decode(obs["task"][0].tolist()) == ["<alfworld>"]
    raw = silg._observe(0)  # SILG's own observation of the same state
    tok = tokenizer()
    assert vocab.decode(obs["wiki"][0, : obs["wiki_len"][0]].tolist()) == [
        tok.id_to_token(int(i)) for i in raw["text"][: raw["text_len"]]
    ]
    for command in walkthrough:
        obs, reward, terminated, truncated, info = env.step(np.array([silg.commands(0).index(command)]))
    assert terminated[0] and info["success"][0]
    assert env.single_observation_space.contains(info["final_obs"][0])  # the final observation is converted too
    env.close()
