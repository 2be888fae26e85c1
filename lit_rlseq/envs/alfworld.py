"""ALFWorld (Shridhar et al. 2021), the text version (TextWorld games of ALFRED tasks), as the SILG benchmark
presents it, over the user's own copy of the games. Nothing is shipped or downloaded.

Env ids ``alfworld:<split>``: ``train``, ``test_id`` (ALFWorld's valid_seen) and ``test_od`` (valid_unseen),
with the option ``root``: a SILG checkout after its ``download_env_data.sh``, i.e. (SILG's own paths)::

    <root>/cache/alfworld/json_2.1.1/{train,valid_seen,valid_unseen}/<task>/<trial>/traj_data.json
                                                                              .../game.tw-pddl
    <root>/cache/alfworld/logic/alfred.pddl, alfred.twl2
    <root>/cache/tokenizer/tokenizer.json                 the text tokenizer (SILG: bert-base-uncased)

Games are chosen as ALFWorld does: every trial folder with ``traj_data.json`` whose path names neither
"movable" nor "Sliced", whose ``task_type`` is one of the six task types, and whose ``game.tw-pddl`` says
``"solvable": true``. Playing ``.tw-pddl`` games needs the ``alfworld`` package (its name demangler and
TextWorld's PDDL engine, which builds the Fast Downward planner from source:
``pip install alfworld``); the adapter says so when it is missing. The layout checks, the game selection and
the observation below need none of it, and any TextWorld game (e.g. one made by ``tw-make``) can be played
through ``SILGTextWorldVectorEnv``.

SILG's observation of a TextWorld game (per env, our re-implementation of SILG's ``TWAlfred``):

    name      int64 [max_objects, 2, 1, max_name]  column 0: the objects of the first description ("a
                                                    cabinet 4"), column 1: those of the latest feedback
    name_len  int64 [max_objects, 2, 1]
    text      int64 [max_text]  "{goal} feedback {feedback} history {last 3 feedbacks, newest first, ';'}"
    text_len  int64 []
    command   int64 [max_actions, max_command]  the admissible commands ("look" removed), tokenised
    command_len int64 [max_actions]
    valid     bool [max_actions]

The goal is the first description's last line without "your task is to:"; a feedback is cut before "you
see"; feedback starting "nothing happens" is not added to the history. Action i plays the i-th admissible
command. Reward: +1 on the step the game is won (success, terminated), plus 1e-4 the first time a feedback
is seen; a game that ends unwon gives -1 (terminated), and so does the step limit (50; truncated). Our
choices: an action beyond the offered commands (``valid`` false) plays "look"; grid and text fields are
0-padded, not BERT's ``[PAD]``-padded (the tokenizer's pad id is 0 in bert-base-uncased).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
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

SPLITS = {"train": "train", "test_id": "valid_seen", "test_od": "valid_unseen"}
TASK_TYPES = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
ITEM = re.compile(r"a (\w+ \d+)")
HISTORY = 3
EXPLORE_REWARD = 1e-4
LOSS_REWARD = -1.0
WIN_REWARD = 1.0
DOWNLOAD = f"alfworld-download (https://github.com/alfworld/alfworld) or {SILG_URL} download_env_data.sh"


def split_feedback(text: str) -> tuple[str, list[str]]:
    """SILG's reading of a game text: the lower-cased text up to "you see", and the objects named in it."""
    items = ITEM.findall(text)
    feedback = text.lower()
    if "you see" in feedback:
        feedback = feedback[: feedback.index("you see")]
    return feedback, items


def read_first_description(text: str) -> tuple[str, str, list[str]]:
    """The game's first text -> (goal, feedback, objects of the scene)."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if not lines:
        raise DataError("the game's first text is empty: no goal to read")
    goal = lines[-1].lower().replace("your task is to:", "").strip()
    feedback, scene = split_feedback("\n".join(lines[1:-1]))
    return goal, feedback, scene


def collect_games(root: str | Path, split: str) -> list[Path]:
    """The playable games of ``split`` in the user's ALFWorld data, chosen as ALFWorld chooses them."""
    if split not in SPLITS:
        raise UserError(f"unknown ALFWorld split {split!r}: use one of {sorted(SPLITS)} (env id 'alfworld:<split>')")
    data = Path(root).expanduser() / "cache" / "alfworld"
    needed = [data / "json_2.1.1" / SPLITS[split], data / "logic" / "alfred.pddl", data / "logic" / "alfred.twl2"]
    needed.append(tokenizer_path(Path(root).expanduser()))
    missing = [str(path) for path in needed if not path.exists()]
    if missing:
        raise MissingArtifactError(
            "ALFWorld data in SILG's layout (see lit_rlseq.envs.alfworld)",
            f"{root}; missing:\n  " + "\n  ".join(missing),
            f"{DOWNLOAD}, then pass the SILG checkout as root",
        )
    games = []
    for trial in sorted((data / "json_2.1.1" / SPLITS[split]).rglob("traj_data.json")):
        if "movable" in str(trial.parent) or "Sliced" in str(trial.parent):
            continue
        task_type = _json(trial).get("task_type")
        game = trial.parent / "game.tw-pddl"
        if task_type not in TASK_TYPES or not game.is_file():
            continue
        if _json(game).get("solvable") is True:
            games.append(game)
    if not games:
        raise DataError(
            f"no playable ALFWorld games under {data / 'json_2.1.1' / SPLITS[split]}: a game is a trial folder "
            "with traj_data.json (task_type one of the six) and game.tw-pddl marked solvable; "
            f"get them with {DOWNLOAD}"
        )
    return games


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path} is not readable JSON ({e})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} must hold a JSON object")
    return data


def start_textworld_game(path: Path, wrappers: Sequence[Any] = ()) -> Any:
    """A TextWorld environment playing the game at ``path`` (won and admissible commands requested)."""
    import textworld

    infos = textworld.EnvInfos(won=True, admissible_commands=True)
    return textworld.start(str(path), request_infos=infos, wrappers=list(wrappers))


def alfworld_wrappers() -> list[Any]:
    try:
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
    except ImportError as e:
        raise UserError(
            f"playing ALFWorld's .tw-pddl games needs the alfworld package ({e}): pip install alfworld "
            "(it builds TextWorld's PDDL planner, Fast Downward, from source: needs cmake and a C++ compiler)"
        ) from e
    return [AlfredDemangler(shuffle=False), AlfredInfos]


class SILGTextWorldVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` TextWorld games (each episode a game drawn from ``games``) with SILG's observation."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        games: Sequence[Path],
        tokenizer: Any,
        num_envs: int = 1,
        max_steps: int = 50,
        max_objects: int = 40,
        max_name: int = 6,
        max_actions: int = 60,
        max_command: int = 10,
        max_text: int = 40,
        seed: int | None = None,
        start_game: Callable[[Path], Any] = start_textworld_game,
    ):
        if not games:
            raise UserError("SILGTextWorldVectorEnv needs at least one game file")
        if min(num_envs, max_steps, max_objects, max_name, max_actions, max_command, max_text) < 1:
            raise UserError("num_envs, max_steps and the max_* sizes must be positive")
        self.games, self.tokenizer, self.start_game = list(games), tokenizer, start_game
        self.num_envs, self.max_steps = num_envs, max_steps
        self.max_objects, self.max_name, self.max_actions = max_objects, max_name, max_actions
        self.max_command, self.max_text = max_command, max_text
        words = tokenizer.get_vocab_size() - 1
        ids = lambda *shape: gym.spaces.Box(0, words, shape, np.int64)  # noqa: E731
        lengths = lambda high, *shape: gym.spaces.Box(0, high, shape, np.int64)  # noqa: E731
        self.single_observation_space = gym.spaces.Dict(
            {
                "name": ids(max_objects, 2, 1, max_name),
                "name_len": lengths(max_name, max_objects, 2, 1),
                "text": ids(max_text),
                "text_len": lengths(max_text),
                "command": ids(max_actions, max_command),
                "command_len": lengths(max_command, max_actions),
                "valid": gym.spaces.Box(0, 1, (max_actions,), np.bool_),
            }
        )
        self.single_action_space = gym.spaces.Discrete(max_actions)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._rng = np.random.default_rng(seed)
        self._envs: list[Any] = [None] * num_envs
        self._episode: list[dict[str, Any]] = [{} for _ in range(num_envs)]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        for i in range(self.num_envs):
            self._start(i)
        return self._batch([self._observe(i) for i in range(self.num_envs)]), {}

    def _start(self, i: int) -> None:
        game = self.games[int(self._rng.integers(len(self.games)))]
        if self._envs[i] is not None:
            self._envs[i].close()
        self._envs[i] = self.start_game(game)
        state = self._envs[i].reset()
        goal, feedback, scene = read_first_description(state.feedback)
        self._episode[i] = {
            "game": game,
            "goal": goal,
            "scene": scene,
            "items": [],
            "feedback": feedback,
            "history": [],
            "seen": {state.feedback},
            "commands": _commands(state),
            "steps": 0,
        }

    def step(self, actions: np.ndarray):
        if self._envs[0] is None:
            raise UserError("step() before reset(): call reset first")
        actions = check_actions(actions, self.num_envs, self.max_actions, "ALFWorld")
        reward = np.zeros(self.num_envs, dtype=np.float32)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        success = np.zeros(self.num_envs, dtype=bool)
        final_obs = np.full(self.num_envs, None, dtype=object)
        observations = []
        for i, action in enumerate(actions.tolist()):
            episode = self._episode[i]
            commands = episode["commands"]
            command = commands[action] if action < len(commands) else "look"
            state, _, done = self._envs[i].step(command)
            feedback, items = split_feedback(state.feedback)
            won = bool(state["won"])
            new_text = state.feedback not in episode["seen"]
            reward[i] = (WIN_REWARD if won else 0.0) + (EXPLORE_REWARD if new_text else 0.0)
            episode["seen"].add(state.feedback)
            episode.update(feedback=feedback, items=items, commands=_commands(state), steps=episode["steps"] + 1)
            if not feedback.strip().startswith("nothing happens"):
                episode["history"] = [feedback, *episode["history"]][:HISTORY]
            terminated[i] = won or done  # a game can also end lost
            truncated[i] = not terminated[i] and episode["steps"] >= self.max_steps
            if (terminated[i] and not won) or truncated[i]:
                reward[i] = LOSS_REWARD
            success[i] = won
            if terminated[i] or truncated[i]:
                final_obs[i] = self._observe(i)
                self._start(i)
            observations.append(self._observe(i))
        ended = terminated | truncated
        info = {"final_obs": final_obs, "_final_obs": ended, "success": success, "_success": ended.copy()}
        return self._batch(observations), reward, terminated, truncated, info

    def commands(self, i: int) -> list[str]:
        """The commands env ``i``'s actions stand for now (action k plays ``commands(i)[k]``)."""
        return list(self._episode[i]["commands"][: self.max_actions])

    def _observe(self, i: int) -> dict[str, np.ndarray]:
        episode = self._episode[i]
        name = np.zeros((self.max_objects, 2, 1, self.max_name), dtype=np.int64)
        name_len = np.zeros((self.max_objects, 2, 1), dtype=np.int64)
        for column, objects in enumerate((episode["scene"], episode["items"])):
            for row, obj in enumerate(objects[: self.max_objects]):
                name[row, column, 0], name_len[row, column, 0] = encode(self.tokenizer, obj, self.max_name)
        history = "; ".join(episode["history"])
        text = f"{episode['goal']} feedback {episode['feedback']} history {history}"
        text, text_len = encode(self.tokenizer, text, self.max_text)
        command = np.zeros((self.max_actions, self.max_command), dtype=np.int64)
        command_len = np.zeros(self.max_actions, dtype=np.int64)
        for row, c in enumerate(episode["commands"][: self.max_actions]):
            command[row], command_len[row] = encode(self.tokenizer, c, self.max_command)
        valid = np.zeros(self.max_actions, dtype=bool)
        valid[: min(len(episode["commands"]), self.max_actions)] = True
        return {
            "name": name,
            "name_len": name_len,
            "text": np.array(text, dtype=np.int64),
            "text_len": np.array(text_len, dtype=np.int64),
            "command": command,
            "command_len": command_len,
            "valid": valid,
        }

    def _batch(self, observations: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {k: np.stack([obs[k] for obs in observations]) for k in self.single_observation_space}

    def close_extras(self, **kwargs: Any) -> None:
        for env in getattr(self, "_envs", ()):
            if env is not None:
                env.close()


def _commands(state: Any) -> list[str]:
    return [c for c in state["admissible_commands"] if c != "look"]


def text_grid_view(env: SILGTextWorldVectorEnv) -> TextGridView:
    """SILG's TextWorld observation in the text-grid layout (option ``layout: text_grid``), for txt2pi and LDD's
    text-grid models:

    * ``name`` [R, 3, 1, N] (R = max(max_objects, max_actions), N = max(max_name, max_command + 1)): columns 0
      and 1 are SILG's object columns; column 2 holds the admissible commands, row k spelled ``<action_k>``
      followed by the command's words, so a policy that pools over space still sees which command each action
      plays; ``rel_pos`` is each cell's (row / R, column / 3);
    * ``wiki``: SILG's text (goal, feedback, history); ``task``: ``<alfworld>``; ``inv``: ``<none>``.
    The vocabulary is the tokenizer's words plus those symbols."""
    rows, words = max(env.max_objects, env.max_actions), max(env.max_name, env.max_command + 1)
    action_words = [f"<action_{k}>" for k in range(env.max_actions)]
    vocab, text_ids = text_grid_vocabulary(env.tokenizer, action_words + ["<alfworld>", "<none>"])
    action_ids = np.array([vocab.index[w] for w in action_words], dtype=np.int64)
    task, none = vocab.index["<alfworld>"], vocab.index["<none>"]
    space = text_grid_space(rows, 3, words, env.max_text, len(vocab), env.max_actions)
    rel_pos = np.stack(np.meshgrid(np.arange(rows) / rows, np.arange(3) / 3, indexing="ij"), -1).astype(np.float32)

    def convert(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = obs["text"].shape[0]
        name = np.zeros((n, rows, 3, 1, words), dtype=np.int64)
        name_len = np.zeros((n, rows, 3, 1), dtype=np.int64)
        name[:, : env.max_objects, :2, :, : env.max_name] = text_ids[obs["name"]]
        name_len[:, : env.max_objects, :2] = obs["name_len"]
        offered = obs["valid"]  # [n, A]: the commands on offer (their rows)
        name[:, : env.max_actions, 2, 0, 0] = np.where(offered, action_ids[None], 0)
        name[:, : env.max_actions, 2, 0, 1 : env.max_command + 1] = text_ids[obs["command"]]
        name_len[:, : env.max_actions, 2, 0] = np.where(offered, obs["command_len"] + 1, 0)
        return text_grid_observation(name, name_len, text_ids[obs["text"]], obs["text_len"], task, none,
                                     np.broadcast_to(rel_pos, (n, rows, 3, 2)), offered)

    return TextGridView(env, vocab, space, convert)


def make_vector_env(
    variant: str | None, num_envs: int, seed: int | None = None, root: str | None = None, layout: str = "silg",
    **kwargs: Any,
) -> SILGTextWorldVectorEnv | TextGridView:
    """The registry's factory for ``alfworld:<split>`` (option ``root``: the SILG checkout; ``layout``: "silg"
    for SILG's observation, "text_grid" for ``text_grid_view``)."""
    check_layout(layout, "ALFWorld")
    root = require_root(root, "ALFWorld", __name__)
    games = collect_games(root, variant or "train")
    alfworld_wrappers()  # fails now, with what to install, rather than at the first reset
    env = SILGTextWorldVectorEnv(
        games,
        load_tokenizer(root),
        num_envs=num_envs,
        seed=seed,
        start_game=lambda game: start_textworld_game(game, alfworld_wrappers()),  # fresh wrappers per game
        **kwargs,
    )
    return text_grid_view(env) if layout == "text_grid" else env
