"""TTM throughputs: play steps/s per text env (random agent), LM training tokens/s, student actions/s.

The cooking game is level 1, train seed 0, generated with tw-make into the game cache when missing (~15 s
once). Jericho is measured on the same generated game (Jericho cannot score it and lists no valid actions, so
its random agent sends "look"); a Jericho game of your own can be timed with ``LIT_RLSEQ_JERICHO_GAME``.
"""

from __future__ import annotations

import os
import time

import torch

from lit_rlseq.bench import BenchResult, benchmark
from lit_rlseq.envs.text import make_text_env
from lit_rlseq.ttm.agents import RandomAgent, WalkthroughAgent
from lit_rlseq.ttm.formats import hindsight_examples
from lit_rlseq.ttm.lm import TextLM, collate, encode_example, train_tokenizer
from lit_rlseq.ttm.play import play_rollout
from lit_rlseq.ttm.trajectory import TextTrajectory

ENV = "cooking_level_1"
# The model of configs/ttm_cooking_finetune.yaml.
LM = dict(n_layer=2, n_head=4, n_embd=64, block_size=384)


def _steps_per_s(env, steps: int) -> float:
    agent, done = RandomAgent(seed=0), 0
    start = time.perf_counter()
    while done < steps:
        done += max(len(play_rollout(env, agent)), 1)
    return done / (time.perf_counter() - start)


@benchmark("ttm.play_steps")
def play_steps(scale: float = 1.0) -> BenchResult:
    steps = max(5, int(400 * scale))
    cooking = make_text_env(ENV, split="train", games=1, max_actions=50, progress=False)
    figures = {"cooking_steps_per_s": _steps_per_s(cooking, steps)}
    jericho_game = os.environ.get("LIT_RLSEQ_JERICHO_GAME") or cooking.games[0]
    cooking.close()
    jericho = make_text_env(jericho_game, max_actions=50)
    figures["jericho_steps_per_s"] = _steps_per_s(jericho, steps)
    jericho.close()
    return BenchResult("ttm.play_steps", figures, note=f"random agent over valid actions, {ENV} (TextWorld API) "
                       f"and Jericho on {os.path.basename(jericho_game)}; valid actions computed every step")


def _teacher_examples() -> tuple[str, list[tuple[list[int], int]]]:
    env = make_text_env(ENV, split="train", games=1, max_actions=50, progress=False)
    trajectory = play_rollout(env, WalkthroughAgent())
    env.close()
    examples = hindsight_examples(trajectory, batch_mean_score=float(trajectory.final_score))
    tok = train_tokenizer([e["prompt"] + e["completion"] for e in examples], vocab_size=1024)
    rows = [encode_example(tok, e["prompt"], e["completion"], LM["block_size"])[:2] for e in examples]
    return tok.to_str(), rows


@benchmark("ttm.lm_train")
def lm_train(scale: float = 1.0) -> BenchResult:
    steps = max(2, int(30 * scale))
    tokenizer, rows = _teacher_examples()
    model = TextLM(tokenizer=tokenizer, **LM)
    optimizer = model.configure_optimizers()
    size = 16 if scale >= 0.1 else 2  # batch size 16 as the config (2 at the tests' tiny scale)
    batch = collate((rows * size)[:size])
    tokens = int((batch["x"] != 0).sum()) * steps
    model._loss(batch).backward()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad()
        model._loss(batch).backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    return BenchResult("ttm.lm_train", {"tokens_per_s": tokens / seconds, "steps_per_s": steps / seconds},
                       note=f"TextLM {LM}, batch {size} of real teacher examples (hindsight format), "
                            f"{torch.get_num_threads()} threads")


@benchmark("ttm.student_actions")
def student_actions(scale: float = 1.0) -> list[BenchResult]:
    actions = max(2, int(20 * scale))
    tokenizer, _ = _teacher_examples()
    env = make_text_env(ENV, split="train", games=1, max_actions=50, progress=False)
    obs, info = env.reset()
    env.close()
    trajectory = TextTrajectory.start(obs, info)
    results = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the student plays (TextLM.on_predict_start)
    for filter in ("none", "closest", "likelihood"):
        # An untrained model rarely samples the newline that ends a completion: each action costs up to
        # max_new_tokens. 100 tokens is about the length of a trained model's hindsight completion.
        model = TextLM(tokenizer=tokenizer, filter=filter, max_new_tokens=100, **LM).eval()
        start, tokens = time.perf_counter(), 0
        for _ in range(actions):
            tokens += len(model.tok.encode(model.act(trajectory, info).generated).ids)
        seconds = time.perf_counter() - start
        results.append(BenchResult(f"ttm.student_actions.{filter}", {"actions_per_s": actions / seconds,
                                                                    "completion_tokens_per_action": tokens / actions},
                                   note=f"filter={filter}, <= 100 new tokens per action, {len(info['valid_actions'])} "
                                        "valid actions, first state of a level-1 game, untrained LM, 1 thread; "
                                        "completion tokens counted by re-encoding its text"))
    torch.set_num_threads(threads)
    return results
