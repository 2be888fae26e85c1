"""The Touchdown adapter on a tiny synthetic data set in SILG's layout, made here (not real Touchdown data)."""

import json

import numpy as np
import pytest

from lit_rlseq.envs.registry import make_vector_env
from lit_rlseq.envs.touchdown import TouchdownVectorEnv, forward_heading, heading_to_x
from lit_rlseq.errors import DataError, MissingArtifactError, UserError

# A ring A -> B -> C -> D -> A (east = heading 90, west = 270) and a dead end E north of B (B -> E at 0,
# E -> B at 180): E has one link, so it is the graph's border. Every panorama's yaw is 0 and its feature
# map is filled with its own index, so the observation tells where the agent is.
NODES = ["A", "B", "C", "D", "E"]
LINKS = [("A", 90, "B"), ("B", 270, "A"), ("B", 90, "C"), ("C", 270, "B"), ("C", 90, "D"), ("D", 270, "C")]
LINKS += [("D", 90, "A"), ("A", 270, "D"), ("B", 0, "E"), ("E", 180, "B")]
DISTANCE = {("A", "C"): 2, ("B", "C"): 1, ("C", "C"): 0, ("D", "C"): 1, ("E", "C"): 2}
H, W = 2, 8


def write_fixture(root, examples=None):
    package = root / "silg" / "envs" / "touchdown"
    (package / "data").mkdir(parents=True)
    (package / "graph").mkdir()
    (root / "cache" / "touchdown").mkdir(parents=True)
    (root / "cache" / "tokenizer").mkdir()
    examples = examples or [{"route_panoids": ["A", "B", "C"], "main_pano": "C", "navigation_text": "go east"}]
    for split in ("train", "dev"):
        (package / "data" / f"{split}.json").write_text("\n".join(json.dumps(e) for e in examples) + "\n")
    (package / "graph" / "nodes.txt").write_text("".join(f"{n},0,40.7,-74.0\n" for n in NODES))
    (package / "graph" / "links.txt").write_text("".join(f"{a},{h},{b}\n" for a, h, b in LINKS))
    index = np.array({n: i for i, n in enumerate(NODES)}, dtype=object)
    feats = np.stack([np.full((H, W), i) for i in range(len(NODES))])
    np.savez(root / "cache" / "touchdown" / "maj_ds_a10.npz", feats=feats, panoid_to_idx=index)
    lengths = np.zeros((5, 5), dtype=np.int64)
    for (a, b), d in DISTANCE.items():
        lengths[NODES.index(a), NODES.index(b)] = d
    np.savez(root / "cache" / "touchdown" / "shortest_paths.npz", lengths=lengths, panoid_to_idx=index)
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({"[PAD]": 0, "[UNK]": 1, "go": 2, "east": 3}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(root / "cache" / "tokenizer" / "tokenizer.json"))
    return root


@pytest.fixture
def root(tmp_path):
    return write_fixture(tmp_path)


def where(obs, i=0):
    return NODES[int(obs["features"][i, 0, 0])]


def test_columns_and_headings_follow_silg():
    assert [heading_to_x(8, 0, h) for h in (0, 90, 180, 270)] == [4, 6, 0, 2]
    assert heading_to_x(8, 90, 90) == 4  # the panorama's centre shows its own yaw
    assert forward_heading(90, [270, 90, 0]) == 90 and forward_heading(80, [270, 0]) == 0


def test_navigating_to_the_goal(root):
    env = make_vector_env("touchdown:train", num_envs=1, seed=0, root=str(root))
    obs, _ = env.reset()
    assert env.observation_space.contains(obs) and env.metadata["autoreset_mode"].name == "SAME_STEP"
    assert where(obs) == "A" and obs["x"][0].tolist() == [2, 6, 0, 0, 0]
    assert obs["valid"][0].tolist() == [True, True, False, False, False]
    assert obs["text"][0, :2].tolist() == [2, 3] and obs["text_len"][0] == 2
    assert obs["cur_x"][0] in (2, 6)
    obs, reward, terminated, truncated, _ = env.step(np.array([1]))  # east: one step closer to C
    assert where(obs) == "B" and obs["cur_x"][0] == 6 and reward[0] == pytest.approx(0.1 - 0.02)
    assert obs["x"][0, :3].tolist() == [2, 4, 6]
    assert obs["rel_pos"][0, 0, :, 0].tolist() == pytest.approx([(c - 6) / W for c in range(W)])
    obs, reward, *_ = env.step(np.array([1]))  # toward the dead end E: turns, does not enter
    assert where(obs) == "B" and obs["cur_x"][0] == 4 and reward[0] == pytest.approx(-0.02)
    obs, reward, *_ = env.step(np.array([4]))  # not an offered column: nothing happens
    assert where(obs) == "B" and obs["cur_x"][0] == 4 and reward[0] == pytest.approx(-0.02)
    obs, reward, terminated, truncated, info = env.step(np.array([2]))  # east to C, the goal
    assert reward[0] == 1.0 and terminated[0] and not truncated[0] and info["success"][0]
    assert NODES[int(info["final_obs"][0]["features"][0, 0])] == "C"
    assert where(obs) == "A"  # the same step started the next episode


def test_the_step_limit_truncates_with_minus_one(root):
    env = TouchdownVectorEnv(root, "dev", num_envs=2, max_steps=2, seed=1)
    env.reset()
    obs, reward, terminated, truncated, _ = env.step(np.array([0, 0]))  # west to D
    assert [where(obs, i) for i in range(2)] == ["D", "D"] and reward == pytest.approx([0.08, 0.08])
    obs, reward, terminated, truncated, info = env.step(np.array([1, 1]))  # east, back to A: out of steps
    assert truncated.all() and not terminated.any() and reward.tolist() == [-1.0, -1.0]
    assert info["_final_obs"].all() and not info["success"].any()


def test_missing_data_names_every_file_and_where_to_get_it(tmp_path):
    with pytest.raises(MissingArtifactError) as error:
        TouchdownVectorEnv(tmp_path, "train")
    message = str(error.value)
    for name in ("data/train.json", "graph/nodes.txt", "graph/links.txt", "maj_ds_a10.npz", "shortest_paths.npz"):
        assert name in message
    assert "tokenizer.json" in message and "download_env_data.sh" in message


def test_bad_input_is_refused_clearly(tmp_path, root):
    with pytest.raises(UserError, match="option root"):
        make_vector_env("touchdown:train", num_envs=1)
    with pytest.raises(UserError, match="unknown Touchdown split 'val'"):
        TouchdownVectorEnv(root, "val")
    broken = write_fixture(tmp_path / "broken", [{"route_panoids": ["A"], "main_pano": "C"}])
    with pytest.raises(DataError, match=r"train.json:1: need a JSON object with .*navigation_text"):
        TouchdownVectorEnv(broken, "train")
    unknown_start = {"route_panoids": ["Z"], "main_pano": "C", "navigation_text": "go"}
    elsewhere = write_fixture(tmp_path / "elsewhere", [unknown_start])
    with pytest.raises(DataError, match="not a node of the graph"):
        TouchdownVectorEnv(elsewhere, "train")
    env = TouchdownVectorEnv(root, "train", num_envs=2)
    with pytest.raises(UserError, match="call reset"):
        env.step(np.array([0, 0]))
    env.reset()
    with pytest.raises(UserError, match=r"0\.\.4 of shape \(2,\)"):
        env.step(np.array([0, 5]))
