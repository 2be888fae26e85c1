"""The random policy's level (the reference line of comparison plots)."""


from lit_rlseq.loops.random_level import random_policy_level


def test_messenger_s1_random_level_is_the_share_of_lucky_first_moves():
    # S1 (4-step limit): a random walk wins when its contact is the right entity; the stats tool measured 7.8%.
    level = random_policy_level("messenger:s1", episodes=2000, num_envs=100)
    assert level["episodes"] == 2000
    assert 0.05 < level["success"] < 0.11
    assert -1.0 <= level["return"] < 0


def test_rtfm_uses_valid_actions_and_is_reproducible():
    a = random_policy_level("rtfm:groups_simple_stationary", episodes=200, num_envs=50, seed=1)
    b = random_policy_level("rtfm:groups_simple_stationary", episodes=200, num_envs=50, seed=1)
    assert a == b and 0 < a["success"] < 0.5

