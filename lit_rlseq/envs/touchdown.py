"""Touchdown (Chen et al. 2019) street navigation, as the SILG benchmark's symbolic variant (SymTouchdown),
over the user's own copy of the data. Nothing is shipped or downloaded: StreetView-derived features are large
and licensed separately.

Env ids ``touchdown:<split>`` (train, dev, test) with the option ``root``: a SILG checkout after its
``download_env_data.sh``, i.e. this layout (SILG's own paths)::

    <root>/silg/envs/touchdown/data/{train,dev,test}.json   one JSON object per line: route_panoids (list),
                                                            main_pano (the goal), navigation_text
    <root>/silg/envs/touchdown/graph/nodes.txt              panoid,pano_yaw_angle,lat,lng
    <root>/silg/envs/touchdown/graph/links.txt              start_panoid,heading,end_panoid
    <root>/cache/touchdown/maj_ds_a10.npz                   feats [nodes, H, W] segmentation class ids
                                                            (19 classes), panoid_to_idx (a pickled dict)
    <root>/cache/touchdown/shortest_paths.npz               lengths [nodes, nodes], panoid_to_idx
    <root>/cache/tokenizer/tokenizer.json                   the text tokenizer (SILG: bert-base-uncased)

The rules (SILG's ``TDWrapper`` over Touchdown's navigator): an episode is one example of the split, drawn
uniformly; the agent starts at the route's first panorama facing a random one of its outgoing headings and
must reach ``main_pano``. Each panorama offers its outgoing headings as columns ``x`` of the feature map
(``x = (W // 2 - int(W * (yaw - heading) / 360)) mod W``, sorted left to right, at most ``max_actions``);
action ``i`` turns to the i-th column's heading and moves along it, arriving facing the neighbour's heading
closest to the one it moved along; a neighbour with fewer than two links is the graph's border and is not
entered. Reward: the decrease of the shortest-path distance to the goal / 10, plus the time penalty -0.02;
reaching the goal gives +1 and ends the episode (success); running out of steps gives -1.

Our choices: an action index beyond the offered columns (``valid`` is false there) does nothing but count a
step; the step limit ends an episode after ``max_steps`` steps (SILG's check lets one more step happen).
Text is the navigation text tokenised by the user's tokenizer file (``tokenizers``), truncated to
``max_text`` ids.

Observations per env: ``features`` int64 [H, W], ``x`` int64 [A] (0-padded), ``valid`` bool [A], ``cur_x``
int64 [] (the column the agent faces), ``text`` int64 [max_text], ``text_len`` int64 [], ``rel_pos``
float32 [H, W, 2] (column offset to ``cur_x`` / W, and 0: SILG's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from lit_rlseq.envs.silg import (
    SILG_URL,
    TextGridView,
    check_actions,
    check_layout,
    encode,
    load_tokenizer,
    require_root,
    text_grid_observation,
    text_grid_space,
    text_grid_vocabulary,
    tokenizer_path,
)
from lit_rlseq.errors import DataError, MissingArtifactError, UserError

SPLITS = ("train", "dev", "test")
TOUCHDOWN_URL = "https://github.com/lil-lab/touchdown"
TIME_PENALTY = -0.02
WIN_REWARD = 1.0
LOSS_REWARD = -1.0
DISTANCE_SCALE = 10.0


def touchdown_files(root: Path, split: str) -> dict[str, tuple[Path, str]]:
    """What the layout needs: name -> (path, where to get it)."""
    package = root / "silg" / "envs" / "touchdown"
    cache = root / "cache"
    return {
        "examples": (package / "data" / f"{split}.json", f"{TOUCHDOWN_URL} (SILG's touchdown/download.sh)"),
        "nodes": (package / "graph" / "nodes.txt", f"{TOUCHDOWN_URL} (SILG's touchdown/download.sh)"),
        "links": (package / "graph" / "links.txt", f"{TOUCHDOWN_URL} (SILG's touchdown/download.sh)"),
        "features": (cache / "touchdown" / "maj_ds_a10.npz", f"{SILG_URL} download_env_data.sh"),
        "shortest_paths": (cache / "touchdown" / "shortest_paths.npz", f"{SILG_URL} download_env_data.sh"),
        "tokenizer": (tokenizer_path(root), f"{SILG_URL} download_env_data.sh (bert-base-uncased)"),
    }


@dataclass
class Graph:
    yaw: dict[str, int]
    neighbours: dict[str, dict[int, str]]  # panoid -> heading -> panoid, in the links file's order


@dataclass
class Example:
    route: list[str]
    goal: str
    text: str


class TouchdownData:
    """The user's Touchdown data in SILG's layout, checked and loaded once (shared by every env of a batch)."""

    def __init__(self, root: str | Path, split: str):
        if split not in SPLITS:
            raise UserError(f"unknown Touchdown split {split!r}: use one of {SPLITS} (env id 'touchdown:<split>')")
        self.root = Path(root).expanduser()
        files = touchdown_files(self.root, split)
        missing = [f"  {path}  <- {source}" for path, source in files.values() if not path.is_file()]
        if missing:
            raise MissingArtifactError(
                "Touchdown data in SILG's layout (see lit_rlseq.envs.touchdown)",
                f"{self.root}; missing (file <- where to get it):\n" + "\n".join(missing),
                f"SILG's download_env_data.sh ({SILG_URL}), then pass the SILG checkout as root",
            )
        path = {name: p for name, (p, _) in files.items()}
        self.graph = _read_graph(path["nodes"], path["links"])
        self.examples = _read_examples(path["examples"], self.graph)
        features = np.load(path["features"], allow_pickle=True)  # the user's own file; the index is a pickle
        self.features = _array(features, "feats", path["features"])
        self.feature_index = _index(features, path["features"])
        paths = np.load(path["shortest_paths"], allow_pickle=True)
        self.lengths = _array(paths, "lengths", path["shortest_paths"])
        self.length_index = _index(paths, path["shortest_paths"])
        if self.features.ndim != 3:
            raise DataError(f"{path['features']}: 'feats' must be [nodes, H, W] class ids, got {self.features.shape}")
        for panoid in self.graph.yaw:
            if panoid not in self.feature_index or panoid not in self.length_index:
                raise DataError(f"panorama {panoid!r} of {path['nodes']} has no features or no shortest paths")
        self.tokenizer = load_tokenizer(self.root)

    def distance(self, panoid: str, goal: str) -> float:
        return float(self.lengths[self.length_index[panoid], self.length_index[goal]])


def _read_graph(nodes: Path, links: Path) -> Graph:
    yaw: dict[str, int] = {}
    neighbours: dict[str, dict[int, str]] = {}
    for number, line in enumerate(nodes.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.strip().split(",")
        if len(fields) != 4:
            raise DataError(f"{nodes}:{number}: expected panoid,pano_yaw_angle,lat,lng, got {line!r}")
        yaw[fields[0]] = int(fields[1])
        neighbours[fields[0]] = {}
    for number, line in enumerate(links.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.strip().split(",")
        if len(fields) != 3 or fields[0] not in yaw or fields[2] not in yaw:
            raise DataError(f"{links}:{number}: expected start_panoid,heading,end_panoid of known nodes, got {line!r}")
        neighbours[fields[0]][int(fields[1])] = fields[2]
    return Graph(yaw, neighbours)


def _read_examples(path: Path, graph: Graph) -> list[Example]:
    examples = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            example = Example(list(record["route_panoids"]), str(record["main_pano"]), str(record["navigation_text"]))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataError(f"{path}:{number}: need a JSON object with route_panoids, main_pano, navigation_text ({e})")
        if not example.route or example.route[0] not in graph.yaw or example.goal not in graph.yaw:
            raise DataError(f"{path}:{number}: the route's start or main_pano is not a node of the graph")
        if not graph.neighbours[example.route[0]]:
            raise DataError(f"{path}:{number}: the route starts at {example.route[0]!r}, which has no links")
        examples.append(example)
    if not examples:
        raise DataError(f"{path} holds no examples")
    return examples


def _array(npz: Any, key: str, path: Path) -> np.ndarray:
    if key not in npz.files:
        raise DataError(f"{path} has no array {key!r} (it has {npz.files})")
    return npz[key]


def _index(npz: Any, path: Path) -> dict[str, int]:
    index = _array(npz, "panoid_to_idx", path)
    if index.dtype != object or not isinstance(index.item(), dict):
        raise DataError(f"{path}: 'panoid_to_idx' must be a pickled dict panoid -> row")
    return index.item()


def heading_to_x(width: int, yaw: int, heading: int) -> int:
    """The feature column that shows ``heading`` in a panorama whose centre faces ``yaw`` (degrees)."""
    return (width // 2 - int(width * (yaw - heading) / 360)) % width


def forward_heading(moved_along: int, headings: list[int]) -> int:
    """Of a node's outgoing ``headings``, the one closest to the direction the agent arrived along."""
    return min(headings, key=lambda h: 180 - abs(abs(h - moved_along) - 180))


class TouchdownVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` Touchdown episodes of one split, same-step autoreset (see the module docstring)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        num_envs: int = 1,
        max_steps: int = 64,
        max_actions: int = 5,
        max_text: int = 128,
        seed: int | None = None,
    ):
        if num_envs < 1 or max_steps < 1 or max_actions < 1 or max_text < 1:
            raise UserError("Touchdown num_envs, max_steps, max_actions and max_text must be positive")
        self.data = TouchdownData(root, split)
        self.num_envs, self.max_steps, self.max_actions, self.max_text = num_envs, max_steps, max_actions, max_text
        _, self.height, self.width = self.data.features.shape
        vocab = self.data.tokenizer.get_vocab_size()
        self.single_observation_space = gym.spaces.Dict(
            {
                "features": gym.spaces.Box(0, np.iinfo(np.int64).max, (self.height, self.width), np.int64),
                "x": gym.spaces.Box(0, self.width - 1, (max_actions,), np.int64),
                "valid": gym.spaces.Box(0, 1, (max_actions,), np.bool_),
                "cur_x": gym.spaces.Box(0, self.width - 1, (), np.int64),
                "text": gym.spaces.Box(0, vocab - 1, (max_text,), np.int64),
                "text_len": gym.spaces.Box(0, max_text, (), np.int64),
                "rel_pos": gym.spaces.Box(-1.0, 1.0, (self.height, self.width, 2), np.float32),
            }
        )
        self.single_action_space = gym.spaces.Discrete(max_actions)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._rng = np.random.default_rng(seed)
        self.panoid = [""] * num_envs
        self.heading = np.zeros(num_envs, dtype=np.int64)
        self.goal = [""] * num_envs
        self.example = np.zeros(num_envs, dtype=np.int64)
        self.steps = np.zeros(num_envs, dtype=np.int64)
        self._columns: list[dict[int, int]] = [{} for _ in range(num_envs)]  # x -> heading, per env
        self._text = np.zeros((num_envs, max_text), dtype=np.int64)
        self._text_len = np.zeros(num_envs, dtype=np.int64)
        self._started = False

    # ---------------------------------------------------------------------------------------- episodes
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        for i in range(self.num_envs):
            self._start(i)
        self._started = True
        return self._observe(), {}

    def _start(self, i: int) -> None:
        index = int(self._rng.integers(len(self.data.examples)))
        record = self.data.examples[index]
        self.example[i], self.goal[i], self.panoid[i], self.steps[i] = index, record.goal, record.route[0], 0
        headings = list(self.data.graph.neighbours[record.route[0]])
        self.heading[i] = headings[int(self._rng.integers(len(headings)))]
        self._text[i], self._text_len[i] = encode(self.data.tokenizer, record.text, self.max_text)

    def step(self, actions: np.ndarray):
        if not self._started:
            raise UserError("TouchdownVectorEnv.step() before reset(): call reset first")
        actions = check_actions(actions, self.num_envs, self.max_actions, "Touchdown")
        reward = np.zeros(self.num_envs, dtype=np.float32)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        graph = self.data.graph
        for i, action in enumerate(actions.tolist()):
            before = self.data.distance(self.panoid[i], self.goal[i])
            columns = sorted(self._columns[i])
            if action < len(columns):
                heading = self._columns[i][columns[action]]
                self.heading[i] = heading
                arrival = graph.neighbours[self.panoid[i]][heading]
                if len(graph.neighbours[arrival]) >= 2:  # the graph's border is not entered
                    self.panoid[i] = arrival
                    self.heading[i] = forward_heading(heading, list(graph.neighbours[arrival]))
            self.steps[i] += 1
            if self.panoid[i] == self.goal[i]:
                reward[i], terminated[i] = WIN_REWARD, True
            elif self.steps[i] >= self.max_steps:
                reward[i], truncated[i] = LOSS_REWARD, True
            else:
                reward[i] = (before - self.data.distance(self.panoid[i], self.goal[i])) / DISTANCE_SCALE + TIME_PENALTY
        ended = terminated | truncated
        final_obs = np.full(self.num_envs, None, dtype=object)
        if ended.any():
            finals = self._observe()
            for i in np.flatnonzero(ended):
                final_obs[i] = {k: v[i] for k, v in finals.items()}
                self._start(int(i))
        info = {"final_obs": final_obs, "_final_obs": ended, "success": terminated.copy(), "_success": ended.copy()}
        return self._observe(), reward, terminated, truncated, info

    # ------------------------------------------------------------------------------------ observations
    def _observe(self) -> dict[str, np.ndarray]:
        n, graph = self.num_envs, self.data.graph
        obs = {
            "features": np.zeros((n, self.height, self.width), dtype=np.int64),
            "x": np.zeros((n, self.max_actions), dtype=np.int64),
            "valid": np.zeros((n, self.max_actions), dtype=bool),
            "cur_x": np.zeros(n, dtype=np.int64),
            "text": self._text.copy(),
            "text_len": self._text_len.copy(),
            "rel_pos": np.zeros((n, self.height, self.width, 2), dtype=np.float32),
        }
        for i in range(n):
            panoid = self.panoid[i]
            obs["features"][i] = self.data.features[self.data.feature_index[panoid]]
            yaw = graph.yaw[panoid]
            columns = {heading_to_x(self.width, yaw, h): h for h in graph.neighbours[panoid]}
            self._columns[i] = columns
            xs = sorted(columns)[: self.max_actions]
            obs["x"][i, : len(xs)] = xs
            obs["valid"][i, : len(xs)] = True
            cur_x = heading_to_x(self.width, yaw, int(self.heading[i]))
            obs["cur_x"][i] = cur_x
            obs["rel_pos"][i, :, :, 0] = (np.arange(self.width) - cur_x) / self.width
        return obs


def text_grid_view(env: TouchdownVectorEnv) -> TextGridView:
    """Touchdown in the text-grid layout (option ``layout: text_grid``), for txt2pi and LDD's text-grid models:

    * ``name`` [H, W, 1, 2]: each cell's segmentation class as a word ``<class_c>``, followed by ``<action_k>``
      in the column that action k moves along (so a policy that pools over space still knows which column each
      action takes); ``name_len`` 1 or 2;
    * ``wiki``: the navigation text (the tokenizer's words); ``task``: the word ``<touchdown>``; ``inv``:
      ``<none>`` (Touchdown has neither); ``rel_pos`` and ``valid`` as SILG's.
    The vocabulary is the tokenizer's words plus those symbols (the classes found in the feature file)."""
    classes = int(env.data.features.max()) + 1
    class_words = [f"<class_{c}>" for c in range(classes)]
    action_words = [f"<action_{k}>" for k in range(env.max_actions)]
    vocab, text_ids = text_grid_vocabulary(env.data.tokenizer, class_words + action_words + ["<touchdown>", "<none>"])
    class_ids = np.array([vocab.index[w] for w in class_words], dtype=np.int64)
    action_ids = np.array([vocab.index[w] for w in action_words], dtype=np.int64)
    task, none = vocab.index["<touchdown>"], vocab.index["<none>"]
    space = text_grid_space(env.height, env.width, 2, env.max_text, len(vocab), env.max_actions)

    def convert(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = obs["features"].shape[0]
        name = np.zeros((n, env.height, env.width, 1, 2), dtype=np.int64)
        name[..., 0, 0] = class_ids[obs["features"]]
        name_len = np.ones((n, env.height, env.width, 1), dtype=np.int64)
        envs, actions = np.nonzero(obs["valid"])
        columns = obs["x"][envs, actions]
        name[envs, :, columns, 0, 1] = action_ids[actions][:, None]
        name_len[envs, :, columns, 0] = 2
        return text_grid_observation(name, name_len, text_ids[obs["text"]], obs["text_len"], task, none,
                                     obs["rel_pos"], obs["valid"])

    return TextGridView(env, vocab, space, convert)


def make_vector_env(
    variant: str | None, num_envs: int, seed: int | None = None, root: str | None = None, layout: str = "silg",
    **kwargs: Any,
) -> TouchdownVectorEnv | TextGridView:
    """The registry's factory for ``touchdown:<split>`` (option ``root``: the SILG checkout; ``layout``: "silg"
    for SILG's observation, "text_grid" for ``text_grid_view``)."""
    check_layout(layout, "Touchdown")
    root = require_root(root, "Touchdown", __name__)
    env = TouchdownVectorEnv(root, variant or "train", num_envs=num_envs, seed=seed, **kwargs)
    return text_grid_view(env) if layout == "text_grid" else env
