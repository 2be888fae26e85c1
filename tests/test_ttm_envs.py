"""Text games: TextWorld cooking games generated with tw-make (real), Jericho on a generated game (real)."""


import pytest

from lit_rlseq.envs.text import (
    CookingEnv,
    JerichoEnv,
    clean_text,
    make_game,
    make_text_env,
    parse_cooking_env,
)
from lit_rlseq.envs.text.cooking import game_path, tw_make_args
from lit_rlseq.errors import MissingArtifactError, UserError


def test_clean_text_removes_prompt_status_and_banner():
    raw = ("\n  ____  __\n |  \\$$| $$\n\nYou are hungry!\n\n\n\n-= Kitchen =-\nA kitchen.\n\n\n"
           ">                                  -= Kitchen =-0/1")
    assert clean_text(raw) == "You are hungry!\n\n-= Kitchen =-\nA kitchen."


def test_levels_and_variants():
    assert parse_cooking_env("cooking_level_2") == (2, False)
    assert parse_cooking_env("cooking_level_4_take") == (4, True)
    assert tw_make_args(2, False, "train", 3) == ["tw-cooking", "--recipe", "1", "--go", "1", "--cut", "--cook",
                                                  "--split", "train", "--seed", "3"]
    assert tw_make_args(4, True, "test", 0)[:8] == ["tw-cooking", "--recipe", "3", "--go", "6", "--take", "3", "--cut"]
    for bad in ("cooking_level_5", "cooking_level_x", "cooking_2"):
        with pytest.raises(UserError, match="unknown cooking env"):
            parse_cooking_env(bad)


@pytest.mark.slow
def test_walkthrough_reaches_max_score(cooking_cache):
    for split in ("train", "test"):
        env = make_text_env("cooking_level_1", split=split, games=1, cache_dir=cooking_cache, progress=False)
        assert isinstance(env, CookingEnv)
        obs, info = env.reset()
        assert "hungry" in obs and "$$" not in obs and info["goal"].startswith("You are hungry")
        assert info["max_score"] == 3 and info["score"] == 0 and info["walkthrough"]
        assert "inventory" in info["valid_actions"]
        total = 0.0
        for action in info["walkthrough"]:
            assert action in info["valid_actions"] or action.startswith(("dice", "slice", "chop"))
            obs, reward, terminated, truncated, info = env.step(action)
            total += reward
        assert terminated and not truncated and info["won"]
        assert info["score"] == info["max_score"] == total
        assert info["moves"] == len(info["walkthrough"])
        env.close()


@pytest.mark.slow
def test_max_actions_truncates(cooking_cache):
    env = make_text_env("cooking_level_1", split="train", games=1, cache_dir=cooking_cache, max_actions=2)
    env.reset()
    assert env.step("look")[3] is False
    obs, reward, terminated, truncated, info = env.step("look")
    assert truncated and not terminated and reward == 0


@pytest.mark.slow
def test_splits_are_cached_by_level_split_and_seed(cooking_cache):
    train, test = game_path(cooking_cache, "cooking_level_1", "train", 0), game_path(cooking_cache, "cooking_level_1",
                                                                                      "test", 0)
    assert train.exists() and test.exists() and train.with_suffix(".json").exists()
    before = train.stat().st_mtime_ns
    assert make_game("cooking_level_1", "train", 0, cooking_cache) == train
    assert train.stat().st_mtime_ns == before  # cached, not regenerated
    assert train.read_bytes() != test.read_bytes()


@pytest.mark.slow
def test_jericho_plays_a_generated_game_without_score(cooking_cache):
    """Jericho loads TextWorld's .z8 games but does not score them (no bindings): text only, no valid actions."""
    path = game_path(cooking_cache, "cooking_level_1", "train", 0)
    env = make_text_env(str(path), max_actions=5)
    obs, info = env.reset()
    assert isinstance(env, JerichoEnv) and not env.supported
    assert "hungry" in obs and info["goal"] == "explore, get points, don't die"
    assert info["valid_actions"] == [] and info["max_score"] is None and info["walkthrough"] is None
    obs, reward, terminated, truncated, info = env.step("inventory")
    assert "carrying" in obs and reward == 0 and info["moves"] == 1
    env.close()


def test_jericho_never_downloads_spacy():
    from lit_rlseq.envs.text.jericho_game import _import_jericho

    jericho = _import_jericho()
    import spacy

    assert isinstance(jericho.util.spacy_nlp, spacy.Language)  # jericho's _load_spacy keeps it: no download


def test_missing_jericho_game_names_path_and_says_not_shipped(tmp_path):
    with pytest.raises(MissingArtifactError) as e:
        make_text_env(str(tmp_path / "zork1.z5"))
    assert str(tmp_path / "zork1.z5") in str(e.value) and "not shipped" in str(e.value)


def test_tw_make_failure_prints_its_message(tmp_path, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    script = fake / "tw-make"
    script.write_text("#!/bin/sh\necho 'Inform 7 compiler exploded' >&2\nexit 3\n")
    script.chmod(0o755)
    monkeypatch.setattr("lit_rlseq.envs.text.cooking._tw_make_command", lambda: [str(script)])
    with pytest.raises(UserError, match="(?s)tw-make failed \\(exit 3\\).*Inform 7 compiler exploded"):
        make_game("cooking_level_1", "train", 0, tmp_path / "cache")
    assert not game_path(tmp_path / "cache", "cooking_level_1", "train", 0).exists()


def test_bad_split_and_missing_cooking_file(tmp_path):
    with pytest.raises(UserError, match="split 'dev'"):
        make_game("cooking_level_1", "dev", 0, tmp_path)
    with pytest.raises(UserError, match="cooking game file not found"):
        CookingEnv([tmp_path / "nope.z8"])
