"""Messenger (Hanjie et al., ICML 2021), our own implementation of the published rules (stages S1-S3).

Env ids ``messenger:<stage>``: ``s1``, ``s2``, ``s3`` (training games), ``s1_val``, ``s2_val``, ``s3_val``
(validation games), ``s1_test``, ``s2_test`` (test games with all 27 movement combinations, "new dynamics"),
``s2_test_se`` (test games, training dynamics), ``s3_test``. Options (``env_kwargs``): ``max_steps`` (default
EMMA's 4 / 64 / 128 for S1 / S2 / S3; LDD uses 10), ``timeout_reward`` (-1: the reward of a step that hits the
limit, EMMA's training rule; None keeps the step's own reward), ``multi_p`` (share of multi-combination
training games, EMMA 0.75, LDD 0.5), ``text_path`` (a directory with the original's human-written
``text_{train,val,test}.json``; default: our template sentences, see ``text.py``).

Rules (the reference's, see ``shared/reference/messenger.md``)
---------------------------------------------------------------
* A 10x10 grid without walls; a move that would leave it is cancelled. Actions 0 up, 1 down, 2 left,
  3 right, 4 stay. Entity ids: NPCs 2..13 (``games.ENTITY_NAMES``), avatar 15 (16 while carrying the message).
* Observation (per env): ``entities`` int64 [10, 10, L] (L = 1, 3, 5 for S1, S2, S3), ``avatar`` int64
  [10, 10, 1], ``manual`` int64 [S, 36] word ids of S = 3 (S1, S2) or 6 (S3) sentences in random order,
  ``manual_len`` [S]. S1 draws all NPCs into its single layer; S2/S3 put one NPC per layer, in an order drawn
  afresh at every observation. A picked-up message, a delivered goal and a dead avatar vanish.
* S1: the avatar at (5, 5) holds the message with probability 0.2; enemy, message and goal stand on three of
  (3,5), (5,3), (5,7), (7,5). Nothing moves. Touching the message without it or the goal with it: +1; the
  enemy, the message again or the goal without the message: -1; any contact ends the episode.
* S2: avatar, enemy, message, goal on the four corners (2,2), (2,7), (7,2), (7,7) in random order; the
  avatar starts without the message; the roles move as one of the 6 permutations of chaser / fleeing /
  immovable (test: any of the 27 combinations). Chasers and fleeing NPCs move half a cell every step (see
  ``core``) after choosing uniformly among the directions [up, left, down, right] that decrease (chaser) or
  increase (fleeing) their Manhattan distance to the avatar's position before its move (all four if none
  does); off-grid moves are undone; NPCs ignore each other. Then the avatar moves, then contacts: the enemy
  (-1, dies), the goal without the message (-1, dies), the message (+0.5, picked up, vanishes), the goal
  with the message (+1, win). Death or win ends the episode.
* S3: two more NPCs, a decoy message (shows the message's entity) and a decoy goal (the goal's entity), on
  six spots (1,2), (1,8), (4,5), (6,1), (6,9), (9,5); 18 movement variants (each decoy moves unlike its twin,
  not both like the enemy). Touching a decoy: -1, dies. Manual: the three roles, the decoys described as
  enemies with their movement, and a distractor about the enemy's entity.
* Games (enemy, message, goal): 44 training games (40 "multi-combination" ones, drawn with probability
  ``multi_p``, and 4 "single-combination" ones), 32 validation and 32 test games whose (entity, role) pairs
  never occur in training (``games.py``). Manual sentences: S1 from a role's "immovable" or "unknown" texts,
  S2 "unknown" (no movement words) with probability 0.15 else the true movement, S3 always the movement.
* Reward +1 / -1 / +0.5 as above; at the step limit the episode is truncated with ``timeout_reward``.
  ``info["success"]`` is true for a win; ``info["outcome"]`` indexes ``core.OUTCOMES``.

Our choices where the reference is silent or we differ on purpose
-----------------------------------------------------------------
* Manuals come from our template sentences unless ``text_path`` is given; the templates are the same for
  every split (the human texts' train/val/test files hold different sentences).
* S2: one harmful contact per step at most (enemy first); S3 sums every harmful contact (enemy, decoys,
  goal without the message), as the reference observed -2 there.
* The engine's random state is per vector env: one ``numpy.random.Generator`` drives game sampling, NPC
  moves and layer orders, so ``reset(seed=s)`` makes a run reproducible (the original is OS-seeded).

Tests and tools: ``env.sim.place(i, avatar=..., enemy=..., ...)`` sets up an exact scenario;
``env.sim.describe(i)`` and ``env.sim.manual_text(i)`` show an episode in words; ``expert.expert_actions``
is a scripted expert; ``python -m lit_rlseq.envs.messenger.stats`` prints random and expert statistics;
``python -m lit_rlseq.envs.messenger.play`` lets a person play.
"""

from lit_rlseq.envs.messenger.core import ACTION_NAMES, NUM_ACTIONS, OUTCOMES, MessengerSimulator
from lit_rlseq.envs.messenger.env import MessengerEnv, MessengerVectorEnv, make_vector_env, observation_space
from lit_rlseq.envs.messenger.games import VARIANT_NAMES, stage_spec
from lit_rlseq.envs.messenger.text import HumanText, TemplateText, text_source

__all__ = [
    "ACTION_NAMES",
    "NUM_ACTIONS",
    "OUTCOMES",
    "VARIANT_NAMES",
    "HumanText",
    "MessengerEnv",
    "MessengerSimulator",
    "MessengerVectorEnv",
    "TemplateText",
    "make_vector_env",
    "observation_space",
    "stage_spec",
    "text_source",
]
