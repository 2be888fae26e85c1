"""RTFM text, vocabulary, names and the train/dev split of the assignments."""

from collections import Counter

import numpy as np
import pytest

from lit_rlseq.envs.rtfm import VARIANTS, RTFMVectorEnv, rtfm_vocabulary
from lit_rlseq.envs.rtfm.assignments import assignment_split
from lit_rlseq.envs.rtfm.core import SLOT_NAMES, pack_sentences
from lit_rlseq.envs.rtfm.text import ELEMENTS, GROUPS, ITEMS, MODIFIERS, MONSTERS, longest_wiki_tokens

TRAIN = ("groups_simple_stationary", "groups_simple", "groups", "groups_nl")


def decoded(env, ids):
    return " ".join(env.vocab.decode(ids))


def listed(names):
    """Our list wording, written out independently of the env: a / a and b / a , b and c."""
    return names[0] if len(names) == 1 else " , ".join(names[:-1]) + " and " + names[-1]


def test_one_vocabulary_for_every_variant():
    vocab = rtfm_vocabulary()
    for variant in VARIANTS:
        assert RTFMVectorEnv(variant).vocab == vocab
    entity_words = {*MONSTERS, *MODIFIERS, *ITEMS, *ELEMENTS, *" ".join(GROUPS).split()}
    assert entity_words | {"you", "empty", "wall", "nothing", ".", ","} <= set(vocab.words)
    sentence = "against fire , pick blessed and arcane .".split()
    assert vocab.decode(vocab.encode(sentence)) == sentence and 0 not in vocab.encode(sentence)


@pytest.mark.parametrize("variant", ["groups_simple_stationary", "groups_dev"])
def test_wiki_and_task_state_the_true_assignment_in_fixed_order(variant):
    env = RTFMVectorEnv(variant, num_envs=20, seed=0)
    obs, _ = env.reset()
    for index in range(20):
        facts = env.sim.describe(index)
        modifiers = {e: listed([m for m, e_m in facts["modifier_element"].items() if e_m == e]) for e in ELEMENTS}
        monsters = {g: listed([m for m, g_m in facts["monster_group"].items() if g_m == g]) for g in GROUPS}
        sentences = [f"{modifiers[e]} beat {e} ." for e in ELEMENTS] + [f"{monsters[g]} are {g} ." for g in GROUPS]
        assert decoded(env, obs["wiki"][index]) == " ".join(sentences)
        assert decoded(env, obs["task"][index]) == f"defeat the {facts['target_group']}"
        assert obs["wiki_len"][index] == len(" ".join(sentences).split())


@pytest.mark.parametrize("variant", TRAIN + ("groups_nl_dev",))
def test_episodes_follow_the_sampling_rules_and_the_grid_shows_their_names(variant):
    env = RTFMVectorEnv(variant, num_envs=200, seed=1)
    obs, _ = env.reset()
    for index in range(200):
        facts = env.sim.describe(index)
        target_element, target_monster = facts["target"].split()
        distractor_element, distractor_monster = facts["distractor"].split()
        good_modifier, good_noun = facts["good_item"].split()
        bad_modifier, bad_noun = facts["distractor_item"].split()
        assert facts["monster_group"][target_monster] == facts["target_group"]
        assert facts["monster_group"][distractor_monster] != facts["target_group"]
        assert distractor_element != target_element and bad_noun != good_noun
        assert facts["modifier_element"][good_modifier] == target_element
        assert facts["modifier_element"][bad_modifier] == distractor_element

        expected = {(r, c): "wall" if r in (0, 5) or c in (0, 5) else "empty" for r in range(6) for c in range(6)}
        for slot, name in enumerate(
            ["you", facts["target"], facts["distractor"], facts["good_item"], facts["distractor_item"]]
        ):
            expected[tuple(env.sim.pos[index, slot])] = name
        shown = {(r, c): decoded(env, obs["name"][index, r, c, 0]) for r in range(6) for c in range(6)}
        assert shown == expected
        assert (
            obs["name_len"][index, :, :, 0] == [[len(expected[r, c].split()) for c in range(6)] for r in range(6)]
        ).all()
    assert SLOT_NAMES[1:3] == ("target", "distractor")


def test_sentences_are_packed_one_after_the_other():
    ids = np.array([[[5, 6, 0], [7, 0, 0]], [[8, 0, 0], [9, 10, 11]]])
    lengths = np.array([[2, 1], [1, 3]])
    packed, total = pack_sentences(ids, lengths, width=8)
    assert packed.tolist() == [[5, 6, 7, 0, 0, 0, 0, 0], [8, 9, 10, 11, 0, 0, 0, 0]] and total.tolist() == [3, 4]
    assert pack_sentences(ids, lengths, width=4)[0].tolist() == [[5, 6, 7, 0], [8, 9, 10, 11]]


def test_longest_wiki_by_hand():
    # simple, canonical: 4 x "m beat e ." + "wolf are star alliance ." + "m are order of the forest ." + 5
    assert longest_wiki_tokens(1, 1, paraphrased=False) == 4 * 4 + 5 + 7 + 5
    # full, paraphrased, each fact with its longest template:
    # "e is no match for m1 and m2 ." (9) x 4, "m1 , m2 and m3 are part of the {group} ." (9 + group words + 1)
    assert longest_wiki_tokens(3, 2, paraphrased=True) == 4 * 9 + (10 + 2) + (10 + 4) + (10 + 2)


def test_text_fits_its_fields_in_every_variant():
    for variant, spec in VARIANTS.items():
        assert longest_wiki_tokens(spec.monsters_per_group, spec.modifiers_per_element, spec.natural_language) <= 80
        env = RTFMVectorEnv(variant, num_envs=1000, seed=2)
        for _ in range(2):
            obs, _ = env.reset()
            for field, limit in (("wiki", 80), ("task", 40), ("inv", 8)):
                lengths = obs[f"{field}_len"]
                assert (lengths >= 1).all() and (lengths <= limit).all()
                assert ((obs[field] != 0).sum(1) == lengths).all()  # no padding inside, no words past the length
            assert ((obs["name"][..., 0, :] != 0).sum(-1) == obs["name_len"][..., 0]).all()
            assert (obs["name_len"] >= 1).all() and (obs["name_len"] <= 8).all()


def test_natural_language_variant_paraphrases_and_shuffles_every_fact():
    env = RTFMVectorEnv("groups_nl", num_envs=1000, seed=3)
    obs, _ = env.reset()
    orders, shapes, tasks = set(), Counter(), Counter()
    for index in range(1000):
        facts = env.sim.describe(index)
        sentences = [s.split() for s in decoded(env, obs["wiki"][index]).split(" .")[:-1]]
        assert len(sentences) == 7
        order = []
        for words in sentences:
            text = " ".join(words)
            subjects = [e for e in ELEMENTS if e in words] + [g for g in GROUPS if g in text]
            assert len(subjects) == 1, text
            subject = subjects[0]
            table = facts["modifier_element"] if subject in ELEMENTS else facts["monster_group"]
            assert {w for w in words if w in table} == {name for name, value in table.items() if value == subject}
            order.append(subject)
            shapes[" ".join("X" if w in table or w in ELEMENTS else w for w in text.replace(subject, "S").split())] += 1
        orders.add(tuple(order))
        tasks[decoded(env, obs["task"][index]).replace(facts["target_group"], "G")] += 1
    assert len(orders) > 500  # 7! = 5040 orders
    assert len(shapes) == 12 + 10 and len(tasks) == 10  # every template in use


def test_train_and_dev_assignments_are_disjoint_halves():
    simple = assignment_split(1, 1)
    train, dev = set(simple.half(dev=False).tolist()), set(simple.half(dev=True).tolist())
    assert len(train) == len(dev) == 72 and not train & dev and train | dev == set(range(144))
    assert simple.permutation[:12].tolist() == [128, 87, 69, 35, 85, 117, 15, 22, 31, 82, 140, 103]  # pinned split

    full = assignment_split(3, 2)
    assert full.monster_group.shape == (1680, 9) and full.modifier_element.shape == (2520, 8)
    assert (np.stack([(full.monster_group == g).sum(1) for g in range(3)]) == 3).all()
    assert (np.stack([(full.modifier_element == e).sum(1) for e in range(4)]) == 2).all()
    assert len(full.permutation) == 1680 * 2520 and len(np.unique(full.permutation)) == len(full.permutation)
    assert full.permutation[:3].tolist() == [710122, 2254005, 1309146]  # pinned split


@pytest.mark.parametrize("variant", ["groups_simple_stationary", "groups_simple_dev", "groups", "groups_nl_dev"])
def test_episodes_draw_only_from_their_half(variant):
    env = RTFMVectorEnv(variant, num_envs=500, seed=4)
    env.reset()
    split = env.sim.split
    combination = env.sim.assignment[:, 0] * len(split.modifier_element) + env.sim.assignment[:, 1]
    own, other = split.half(env.variant.dev), split.half(not env.variant.dev)
    assert np.isin(combination, own).all() and not np.isin(combination, other).any()
    if env.variant.monsters_per_group == 1:
        assert len(set(combination.tolist())) > 60  # spread over the 72 of its half
