"""Environments, one gymnasium adapter per family, plus our own RTFM, Messenger and a toy env.

Conventions every env family here follows
-----------------------------------------
Vector envs are ``gymnasium.vector.VectorEnv`` objects with **same-step autoreset**
(``metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.SAME_STEP``): when an episode ends, ``step``
returns the first observation of the next episode, and ``info["final_obs"]`` (an object array of length
``num_envs``, masked by ``info["_final_obs"]``) holds the terminal observation. Episode-level outcomes that
are not in the reward are reported on the final step in ``info["success"]`` (bool [num_envs], masked by
``info["_success"]``). An env may report more per-episode numbers the same way (e.g. NetHack's ``depth``):
it lists their keys in its ``episode_info`` attribute (a tuple of str), and the learners log their episode
means beside return, length and success.

Text-grid observations (RTFM, Messenger with text, the toy env) are dicts of numpy arrays, per env:

    name      int64 [H, W, P, N]  word ids of each cell's occupants (P placements, N words each; 0 = pad)
    name_len  int64 [H, W, P]     number of words per placement (0 for an empty placement)
    wiki      int64 [Lw]          document word ids, padded with 0;  wiki_len int64 []  (>= 1)
    task      int64 [Lt]          task/goal word ids;                task_len int64 []  (>= 1)
    inv       int64 [Li]          inventory word ids;                inv_len  int64 []  (>= 1)
    rel_pos   float32 [H, W, 2]   (row - agent_row) / H, (col - agent_col) / W
    valid     bool [A]            which actions are legal now

Every text field holds at least one word (an empty inventory is spelled out as a word) so that text
encoders never see an empty sequence.
"""
