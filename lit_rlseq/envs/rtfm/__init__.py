"""RTFM ("Read to Fight Monsters", Zhong et al. 2020), our own implementation of the published rules.

Env ids ``rtfm:<variant>`` with variants ``groups_simple_stationary`` (S1), ``groups_simple`` (S2),
``groups`` (S3), ``groups_nl`` (S4), each with a ``_dev`` twin on the held-out half of the assignments.

Rules (the reference's, see ``shared/reference/ldd.md``)
--------------------------------------------------------
* A 6x6 room whose border is wall (4x4 floor). Five objects on distinct random floor cells: the agent
  ("you"), the target monster "{E_t} {monster of the target group}", the distractor monster "{E_b} {monster
  of another group}" (E_b != E_t), the good item "{modifier that beats E_t} {item}" and the distractor item
  "{modifier that beats E_b} {another item}".
* Assignments: full variants put 3 monsters in each group and 2 modifiers per element; simple variants use
  the first 3 monsters (1 per group) and the first 4 modifiers (1 per element). All combinations are
  shuffled with a fixed seed and split in half, train | dev (``assignments.py``).
* Wiki: one sentence per element "{modifiers} beat {element} ." (elements in list order), then one per group
  "{monsters} are {group} ." (groups in list order); lists read "a", "a and b", "a , b and c". Task "defeat
  the {group}". Inventory: the held item's name, or "nothing". ``groups_nl``: the seven facts in a random
  order, each with a random paraphrase of our own (12 for beat, 10 for group, 10 for the task).
* Actions 0 stay, 1 up, 2 down, 3 left, 4 right. Moving into a wall does nothing and is masked out of
  ``valid`` (stay is always valid).
* One step, in the reference's order (``RTFMSimulator.step``): every actor chooses its move before any
  actor moves; then the agent (speed 2) moves, then the two monsters (speed 1) in an order shuffled every
  step. A monster sees the agent within Euclidean distance 5 (on the 4x4 floor: always); it then chases
  with probability 0.6, a uniform pick among the moves that bring it closer to the agent's cell *at the
  start of the step*; otherwise (or with no such move) it takes a uniform pick among staying and the moves
  not into a wall. Only walls block a monster: it may step onto an item (it does not pick it up) or onto the
  other monster (they do not fight). Stationary variants never move monsters.
* Each arrival resolves the cell it lands on: the agent picks up the item there (one slot: the held item is
  destroyed), then fights each live monster there in turn (both monsters: in this step's monster order); a
  monster arriving on the agent's cell fights it.
* Fight, agent first: the weapon kills the monster in one hit iff its modifier beats the monster's element
  (see the HP constants in ``core.py``); otherwise the monster survives and its hit kills the agent.
* A death does not stop the step: a dead actor's queued move is dropped, the others' moves still happen.
  At the end of the step: reward +1 (win) when the target died and the agent lives; -1 when the agent died
  (this overrides a kill in the same step), the distractor died, or the step limit (default 80) is reached
  (truncated); else -0.02.

Our choices where the reference leaves it open
----------------------------------------------
* A cell shows one occupant: the agent, else a monster, else an item (the reference draws the fastest
  first); of two monsters in one cell the target shows (the reference's pick follows a set's order).
* Wiki lists name monsters and modifiers in the order of the word lists; ``groups_nl`` shuffles the order
  of the seven facts, not the names inside a fact. The simple variants keep the plural templates
  ("wolf are star alliance .").
* A terminal state shows who is left on the grid: a dead agent vanishes (the monster stays in its cell),
  a dead monster vanishes (the agent stands in its cell). ``rel_pos`` and ``valid`` of a dead agent refer to
  its last cell.
* ``info["outcome"]`` on the final step is an index into ``OUTCOMES`` (win, agent_died, distractor_died,
  timeout); ``info["success"]`` is ``outcome == win``. These keys and ``final_obs`` are present on every
  step, masked by ``_outcome`` / ``_success`` / ``_final_obs``.
* One ``numpy.random.Generator`` drives a whole vector env: ``reset(seed=s)`` (or the constructor's
  ``seed``) makes the episodes and every observation reproducible for the same actions.
* Rewards are float32.

Tests and tools: ``env.sim.place(i, agent=..., target=..., ...)`` sets up an exact scenario in env ``i``
(see ``RTFMSimulator.place``); ``env.sim.describe(i)`` gives an episode's names and assignment in words;
``expert.expert_actions(env)`` is the scripted expert; ``python -m lit_rlseq.envs.rtfm.stats`` prints the
random-policy and expert statistics; ``python -m lit_rlseq.envs.rtfm.play`` lets a person play.
"""

from lit_rlseq.envs.rtfm.assignments import VARIANTS, VariantSpec, variant_spec
from lit_rlseq.envs.rtfm.core import ACTION_NAMES, OUTCOMES, ExpertView, RTFMSimulator
from lit_rlseq.envs.rtfm.env import RTFMEnv, RTFMVectorEnv, make_vector_env, observation_space
from lit_rlseq.envs.rtfm.text import rtfm_vocabulary

__all__ = [
    "ACTION_NAMES",
    "OUTCOMES",
    "VARIANTS",
    "ExpertView",
    "RTFMEnv",
    "RTFMSimulator",
    "RTFMVectorEnv",
    "VariantSpec",
    "make_vector_env",
    "observation_space",
    "rtfm_vocabulary",
    "variant_spec",
]
