"""LDD on NetHack: per-episode depth reaching the learner's metrics, the dynamics targets built from recorded
steps, the dynamics model's shapes and metrics, the store checks, and LDD's initialisation and distillation."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from lit_rlseq.envs.nethack import NetHackVectorEnv
from lit_rlseq.errors import DataError, MissingArtifactError, UserError
from lit_rlseq.ldd import LDDNetHackImpala, NetHackImpala
from lit_rlseq.ldd.nethack_dynamics import (
    COLLECT_COMMAND,
    FIT_COMMAND,
    NetHackDynamicsDataModule,
    NetHackDynamicsModule,
    load_nethack_dynamics_encoder,
    screen_accuracy,
)
from lit_rlseq.loops.collector import Collector, episode_info
from lit_rlseq.loops.module import EpisodeMetrics
from lit_rlseq.loops.unroll import EpisodeStats
from lit_rlseq.nn.nethack import NetHackPolicy, NetHackPolicyConfig
from lit_rlseq.nn.nethack_dynamics import NetHackDynamics, NetHackDynamicsConfig
from lit_rlseq.rollouts import Episode, EpisodeTags, RolloutStore

SMALL = dict(d_char=8, d_line=16, map_channels=(8,), d_map=16, crop=5, crop_channels=(8,), d_crop=16, d_rep=24)


# -- depth (and score) as per-episode numbers the learner logs ------------------------------------------------
def test_episode_info_reads_reported_values_and_marks_the_rest_missing():
    info = {"depth": np.array([3, 7, 2]), "_depth": np.array([True, False, True])}
    assert episode_info(info, "depth", np.array([0, 1, 2])).tolist()[::2] == [3.0, 2.0]
    assert np.isnan(episode_info(info, "depth", np.array([1]))).all()
    assert np.isnan(episode_info({}, "depth", np.array([0, 2]))).all()


def test_episode_stats_keep_info_through_cat_and_select():
    a = EpisodeStats(torch.tensor([1.0, 2.0]), torch.tensor([5, 6]), torch.tensor([0.0, 1.0]),
                     {"depth": torch.tensor([1.0, 3.0])})
    b = EpisodeStats(torch.tensor([4.0]), torch.tensor([7]), torch.tensor([0.0]))  # an env without depth
    joined = EpisodeStats.cat([a, EpisodeStats.empty(), b])
    assert joined.episode_return.tolist() == [1.0, 2.0, 4.0]
    assert joined.info["depth"][:2].tolist() == [1.0, 3.0] and torch.isnan(joined.info["depth"][2])
    picked = joined.select(torch.tensor([False, True, False]))
    assert picked.length.tolist() == [6] and picked.info["depth"].tolist() == [3.0]
    metrics = EpisodeMetrics(("depth",))
    metrics.update(joined)
    assert metrics.info["depth"].compute().item() == pytest.approx(2.0)  # the missing one is ignored
    with pytest.raises(UserError, match="may not be named"):
        EpisodeMetrics(("return",))


class RandomKeys:
    """A scripted policy pressing random keys (NetHack needs no model to be stepped)."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def act(self, env, obs):
        return self.rng.integers(env.single_action_space.n, size=env.num_envs)


def test_the_collector_reports_nethack_depth_and_score_per_episode():
    env = NetHackVectorEnv(num_envs=2, max_steps=6, seed=0)
    collector = Collector(env, seed=0)
    collector.reset(0)
    stats = collector.run_episodes(RandomKeys(), 2, greedy=False)
    env.close()
    assert len(stats) == 4 and set(stats.info) == {"score", "depth"}
    assert (stats.info["depth"] >= 1).all()  # the hero starts on dungeon level 1
    assert torch.equal(stats.info["score"], stats.episode_return)  # NLE's rewards are score differences


# -- dynamics targets from recorded steps ----------------------------------------------------------------------
def nethack_episode(index: int, length: int, actions: int = 121) -> dict[str, np.ndarray]:
    """An episode whose screen t is filled with the code 10 * index + t, so every pair is recognisable."""
    codes = 10 * index + np.arange(length + 1)
    chars = np.broadcast_to(codes[:, None, None], (length + 1, 24, 80)).astype(np.uint8)
    return {
        "obs/tty_chars": chars.copy(),
        "obs/tty_colors": np.full((length + 1, 24, 80), 7, dtype=np.int8),
        "obs/tty_cursor": np.tile(np.array([[5, 9]], dtype=np.uint8), (length + 1, 1)),
        "action": (codes[:-1] % actions).astype(np.int64),
        "reward": np.zeros(length, dtype=np.float32),
    }


def write_store(path: Path, lengths=(3, 5, 4, 2), env: str = "nethack", edit=None) -> None:
    with RolloutStore(path).writer({"env": env, "env_kwargs": {}}) as writer:
        for index, length in enumerate(lengths):
            fields = nethack_episode(index, length)
            if edit is not None:
                edit(index, fields)
            writer.append(Episode(fields, EpisodeTags(run_id="demo", env=env)))


def test_targets_are_the_next_screen_of_the_same_episode(tmp_path):
    lengths = (3, 5, 4, 2)
    write_store(tmp_path / "store", lengths)
    dm = NetHackDynamicsDataModule(str(tmp_path / "store"), batch_size=4, val_fraction=0.25)
    dm.setup("fit")
    assert dm.num_actions == 121
    seen = []
    for loader in (dm.train_dataloader(), dm.val_dataloader()):
        for batch in loader:
            assert batch["obs"]["tty_chars"].shape[1:] == (24, 80) and batch["next_chars"].shape[1:] == (24, 80)
            now = batch["obs"]["tty_chars"][:, 0, 0].long()
            after = batch["next_chars"][:, 0, 0].long()
            assert torch.equal(after, now + 1)  # obs t+1 of the same episode, never the next episode's first
            assert torch.equal(batch["action"], now % 121)  # the action taken at obs t
            assert (batch["obs"]["tty_chars"] == now[:, None, None]).all()  # whole screens, not rows of others
            seen += now.tolist()
    # every transition exactly once (L per episode: L + 1 screens give L pairs), none across an episode boundary
    expected = [10 * i + t for i, length in enumerate(lengths) for t in range(length)]
    assert sorted(seen) == sorted(expected)


# -- the model and its metrics ---------------------------------------------------------------------------------
def test_the_model_predicts_a_256_way_distribution_for_every_cell():
    torch.manual_seed(0)
    config = NetHackDynamicsConfig(NetHackPolicyConfig(num_actions=7, **SMALL), d_action=4, channels=8, blocks=1)
    model = NetHackDynamics(config)
    obs = {k: torch.from_numpy(v[:2]) for k, v in nethack_episode(1, 2).items() if k.startswith("obs/")}
    obs = {k.removeprefix("obs/"): v for k, v in obs.items()}
    logits = model(obs, torch.tensor([0, 6]))
    assert logits.shape == (2, 256, 24, 80)
    # the action matters, and so does the screen
    assert not torch.allclose(logits[0], model(obs, torch.tensor([3, 6]))[0])
    with pytest.raises(ValueError, match="actions must be"):
        model(obs, torch.tensor([0, 7]))
    # the policy loads the dynamics encoder with every key matching
    policy = NetHackPolicy(NetHackPolicyConfig(num_actions=7, d_core=12, **SMALL))
    policy.encoder.load_state_dict(model.encoder.state_dict())


def test_screen_accuracy_by_hand():
    target = torch.zeros(2, 24, 80, dtype=torch.long)
    current = target.clone()
    current[0, 0, :4] = 5  # four cells of screen 0 change (5 -> 0)
    predicted = target.clone()
    predicted[0, 0, :2] = 5  # the model gets two of them wrong
    hits = screen_accuracy(predicted, target, current != target)
    assert hits["cell_acc"].mean().item() == pytest.approx(1 - 2 / (2 * 24 * 80))
    assert hits["changed_cell_acc"].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert hits["screen_acc"].tolist() == [0.0, 1.0]
    copy = screen_accuracy(current, target, current != target)
    assert copy["changed_cell_acc"].sum() == 0  # "nothing changes" is wrong on every changed cell


# -- bad input -------------------------------------------------------------------------------------------------
def test_bad_stores_are_refused_with_what_to_do(tmp_path):
    with pytest.raises(MissingArtifactError, match="ldd_nethack_collect"):
        NetHackDynamicsDataModule(str(tmp_path / "nothing"))
    write_store(tmp_path / "rtfm", env="rtfm:groups_simple_stationary")
    with pytest.raises(DataError, match="recorded on env 'rtfm:groups_simple_stationary', expected 'nethack'") as e:
        NetHackDynamicsDataModule(str(tmp_path / "rtfm"))
    assert COLLECT_COMMAND in str(e.value)

    def drop_cursor(index, fields):
        del fields["obs/tty_cursor"]

    write_store(tmp_path / "no_cursor", edit=drop_cursor)
    with pytest.raises(DataError, match="field 'obs/tty_cursor' is missing"):
        NetHackDynamicsDataModule(str(tmp_path / "no_cursor"))

    def bad_action(index, fields):
        if index == 2:
            fields["action"][1] = 500

    write_store(tmp_path / "bad_action", edit=bad_action)
    dm = NetHackDynamicsDataModule(str(tmp_path / "bad_action"), val_fraction=0.25)
    with pytest.raises(DataError, match=r"actions in \[0, 500\] \(first in episode 2 of shard"):
        dm.setup("fit")

    def bad_cursor(index, fields):
        fields["obs/tty_cursor"][0] = (30, 2)

    write_store(tmp_path / "bad_cursor", edit=bad_cursor)
    with pytest.raises(DataError, match="tty_cursor' holds positions outside"):
        NetHackDynamicsDataModule(str(tmp_path / "bad_cursor"), val_fraction=0.25).setup("fit")
    with pytest.raises(UserError, match="not a NetHack environment"):
        NetHackDynamicsDataModule(str(tmp_path / "rtfm"), env="toy")
    with pytest.raises(UserError, match="needs the number of actions"):
        NetHackDynamicsModule()


# -- LDD's RL stage --------------------------------------------------------------------------------------------
def test_dynamics_training_writes_metrics_against_nothing_changes(nethack_dynamics_checkpoint):
    rows = list(csv.DictReader((nethack_dynamics_checkpoint.parents[1] / "dynamics_metrics.csv").open()))
    assert rows and {"val/cell_acc", "val/copy_cell_acc", "val/changed_cell_acc", "val/copy_changed_cell_acc",
                     "val/screen_acc", "val/copy_screen_acc"} <= set(rows[0])
    assert float(rows[0]["val/copy_changed_cell_acc"]) == 0.0
    assert (nethack_dynamics_checkpoint.parents[1] / "dynamics_metrics.png").stat().st_size > 0


def test_ldd_policy_starts_from_the_dynamics_encoder_and_distils_toward_a_frozen_copy(nethack_dynamics_checkpoint):
    config, state = load_nethack_dynamics_encoder(str(nethack_dynamics_checkpoint))
    module = LDDNetHackImpala(str(nethack_dynamics_checkpoint), num_actions=121, d_core=16, handover_rep_rms=None,
                              lr_schedule="constant")
    assert module.policy.config.d_rep == config.d_rep and module.policy.config.d_core == 16
    for key, value in state.items():
        assert torch.equal(module.policy.encoder.state_dict()[key], value)
        assert torch.equal(module.teacher.state_dict()[key], value)
    assert not any(p.requires_grad for p in module.teacher.parameters())
    optimised = {id(p) for group in module.configure_optimizers()["optimizer"].param_groups for p in group["params"]}
    assert not optimised & {id(p) for p in module.teacher.parameters()}
    assert (module.lr, module.discount, module.entropy_cost) == (1e-4, 0.999, 0.001)  # NetHackImpala's defaults

    from lit_rlseq.loops.unroll import Unroll

    episode = nethack_episode(0, 4)
    obs = {k.removeprefix("obs/"): torch.from_numpy(v)[:, None].repeat(1, 2, *([1] * (v.ndim - 1)))
           for k, v in episode.items() if k.startswith("obs/")}
    unroll = Unroll(obs=obs, first=torch.zeros(5, 2, dtype=torch.bool), action=torch.zeros(4, 2, dtype=torch.long),
                    reward=torch.zeros(4, 2), done=torch.zeros(4, 2, dtype=torch.bool),
                    behaviour_logits=torch.zeros(4, 2, 121), initial_state=module.policy.initial_state(2))
    out, extra = module.learner_forward(unroll)
    distill = module.auxiliary_losses(unroll, out, extra)["distill"]
    assert distill.item() == pytest.approx(0.0, abs=1e-10)  # the student starts as its teacher
    with torch.no_grad():
        module.policy.encoder.fc.bias.add_(0.5)
    out, extra = module.learner_forward(unroll)
    distill = module.auxiliary_losses(unroll, out, extra)["distill"]
    distill.backward()
    assert distill.item() > 0 and module.policy.encoder.fc.bias.grad.abs().sum() > 0


def test_ldd_refuses_other_checkpoints_and_mismatched_settings(nethack_dynamics_checkpoint,
                                                               nethack_baseline_checkpoint, tmp_path):
    with pytest.raises(MissingArtifactError, match="ldd_nethack_dynamics"):
        LDDNetHackImpala(str(tmp_path / "missing.ckpt"), num_actions=121)
    with pytest.raises(DataError, match="not a NetHack dynamics model checkpoint") as e:
        LDDNetHackImpala(str(nethack_baseline_checkpoint), num_actions=121)
    assert FIT_COMMAND in str(e.value)
    with pytest.raises(DataError, match="models 121 actions, the data's env has 23"):
        LDDNetHackImpala(str(nethack_dynamics_checkpoint), num_actions=23)
    with pytest.raises(UserError, match="takes the encoder sizes from the dynamics checkpoint"):
        LDDNetHackImpala(str(nethack_dynamics_checkpoint), num_actions=121, d_char=3)
    # NetHackImpala's defaults (which the CLI passes) are fine: the checkpoint's sizes hold
    module = LDDNetHackImpala(str(nethack_dynamics_checkpoint), num_actions=121, d_core=8, d_char=32)
    assert module.policy.config.d_char == load_nethack_dynamics_encoder(str(nethack_dynamics_checkpoint))[0].d_char
    assert isinstance(module, NetHackImpala)


# -- bin/ldd-nethack -------------------------------------------------------------------------------------------
def test_the_pipeline_records_demonstrations_from_the_first_baseline_and_feeds_each_stage_the_last():
    from lit_rlseq.ldd.nethack_pipeline import plan

    out = Path("/tmp/out/ldd_nethack")
    stages = plan(out, [3, 4], "paper", ["--trainer.devices=2"])
    assert [s.name for s in stages] == ["baseline seed 3", "baseline seed 4", "demonstrations", "dynamics model",
                                        "LDD seed 3", "LDD seed 4"]
    collect, dynamics, ldd = stages[2].command, stages[3].command, stages[4].command
    assert "collect" in collect and f"--ckpt_path={out}/baseline/seed3/checkpoints/last.ckpt" in collect
    assert any(arg.endswith("configs/scale/ldd_nethack_collect_paper.yaml") for arg in collect)
    assert f"--data.init_args.path={out}/demos" in dynamics
    assert f"--model.init_args.dynamics_checkpoint={out}/dynamics/checkpoints/best.ckpt" in ldd
    assert any(arg.endswith("configs/ldd_nethack.yaml") for arg in ldd) and "--trainer.devices=2" in ldd
    assert "--trainer.devices=2" not in dynamics


def test_the_comparison_reads_score_and_depth_at_equal_frame_budgets(tmp_path):
    import json

    from lit_rlseq.ldd.nethack_pipeline import comparison
    from lit_rlseq.ldd.pipeline import compare
    from lit_rlseq.loops.curves import FRAMES, write_curve

    for method, points in (("baseline", [(100, 2.0, 1.0), (200, 6.0, 1.0), (300, 9.0, 2.0)]),
                           ("ldd", [(100, 4.0, 1.0), (200, 8.0, 2.0)])):
        directory = tmp_path / method / "seed0"
        directory.mkdir(parents=True)
        write_curve(directory / "learning_curve.csv", [
            {FRAMES: f, "eval/challenge/score": score, "eval/challenge/depth": depth} for f, score, depth in points
        ])
    table = compare(tmp_path, [0], {"baseline 0": 10.0, "ldd 0": 12.0}, comparison(smoke=True))
    assert "| method | frames | mean score | mean depth | wall time (s, per seed) |" in table
    assert "| IMPALA baseline | 200 | 6.000 | 1.000 | 10.000 |" in table
    assert "| LDD | 200 | 8.000 | 2.000 | 12.000 |" in table and "| 300 |" not in table
    levels = json.loads((tmp_path / "random_level.json").read_text())["levels"]
    assert levels["depth"]["depth"] >= 1 and levels["score"]["episodes"] >= 4  # measured with random keys
    assert f"| random policy | | {levels['score']['score']:.3f} | {levels['depth']['depth']:.3f} | |" in table
    assert (tmp_path / "comparison.png").stat().st_size > 0


# -- ttyrec files -> demonstrations ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recorded_game(tmp_path_factory):
    """A short NetHackChallenge game recorded by NLE itself as a ttyrec (version 3), with what the env showed."""
    import gymnasium as gym
    import nle  # noqa: F401  (registers the NetHack env ids)

    savedir = tmp_path_factory.mktemp("ttyrec")
    env = gym.make("NetHackChallenge-v0", savedir=str(savedir), save_ttyrec_every=1,
                   observation_keys=("tty_chars", "tty_colors", "tty_cursor"))
    obs, _ = env.reset(seed=0)
    copy = lambda obs: {k: v.copy() for k, v in obs.items()}  # noqa: E731  (NLE reuses its arrays)
    screens, actions, rng = [copy(obs)], [], np.random.default_rng(0)
    for _ in range(15):
        action = int(rng.integers(env.action_space.n))
        obs, *_ = env.step(action)
        screens.append(copy(obs))
        actions.append(action)
    env.close()
    (path,) = savedir.glob("*.ttyrec3.bz2")
    return path, screens, actions


def test_a_ttyrec_becomes_an_episode_of_screens_and_actions(recorded_game, tmp_path):
    from lit_rlseq.cli import run_cli
    from lit_rlseq.ldd.nethack_ttyrec import env_keys, read_ttyrec

    path, screens, actions = recorded_game
    keys = env_keys()
    fields = read_ttyrec(path, keys)
    steps = len(fields["action"])
    assert steps == len(actions) - 1  # the last key's outcome is not in the file
    # the keys pressed (a few actions share a key: the file cannot tell them apart, the first one is taken)
    assert [keys[a] for a in fields["action"]] == [keys[a] for a in actions[:steps]]
    assert all(keys.index(keys[a]) == a for a in fields["action"])
    for key in ("tty_chars", "tty_colors", "tty_cursor"):
        assert np.array_equal(fields[f"obs/{key}"], np.stack([s[key] for s in screens[: steps + 1]]))
    assert len({screen.tobytes() for screen in fields["obs/tty_chars"]}) > 2  # the screens are not all alike
    run_cli(["import_ttyrecs", f"--store={tmp_path / 'store'}", str(path)])
    dm = NetHackDynamicsDataModule(str(tmp_path / "store"), val_fraction=0.0, batch_size=64)
    dm.setup("fit")
    assert len(dm.train_dataset) == steps  # the dynamics model reads it like recorded demonstrations


def test_bad_ttyrecs_are_refused_naming_the_file(recorded_game, tmp_path):
    from lit_rlseq.ldd.nethack_ttyrec import env_keys, read_ttyrec

    path = recorded_game[0]
    with pytest.raises(MissingArtifactError, match="save_ttyrec_every"):
        read_ttyrec(tmp_path / "none.ttyrec3.bz2", env_keys())
    garbage = tmp_path / "garbage.ttyrec3.bz2"
    garbage.write_bytes(b"not a ttyrec at all")
    with pytest.raises(DataError, match="garbage.ttyrec3.bz2"):
        read_ttyrec(garbage, env_keys())
    with pytest.raises(DataError, match=r"which is not one of the env's 23 actions"):  # NetHackScore's 23 keys
        read_ttyrec(path, env_keys("nethack:NetHackScore-v0"))
    with pytest.raises(UserError, match="not a NetHack env"):
        env_keys("toy")


def test_the_copy_logit_starts_the_model_near_nothing_changes():
    torch.manual_seed(0)
    config = NetHackDynamicsConfig(NetHackPolicyConfig(num_actions=7, **SMALL), d_action=4, channels=8, blocks=1)
    model = NetHackDynamics(config)
    episode = nethack_episode(2, 1)
    episode["obs/tty_chars"][0, 3, :40] = ord("#")
    obs = {k.removeprefix("obs/"): torch.from_numpy(v[:1]) for k, v in episode.items() if k.startswith("obs/")}
    predicted = model(obs, torch.tensor([0])).argmax(1)
    assert torch.equal(predicted, obs["tty_chars"].long())  # a fresh model predicts the current screen
    with torch.no_grad():
        model.copy_logit.fill_(0.0)
    assert not torch.equal(model(obs, torch.tensor([0])).argmax(1), obs["tty_chars"].long())
