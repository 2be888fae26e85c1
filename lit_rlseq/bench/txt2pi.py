"""txt2pi forward / forward+backward time at the paper's sizes, with and without text dedupe.

Inputs are shaped like RTFM's: a 6x6 grid, one placement of up to 8 words per cell, wikis of 40-80 words
padded to 80, tasks padded to 40, inventories padded to 8. A learner batch (24 unrolls x 81 steps = 1944
rows) covers about 25 episodes, so it holds about 25 distinct wikis and tasks; an actor batch (64 envs) holds
64 distinct ones. ratio = forward+backward time encoding every row / with dedupe, on the learner batch.
"""

from __future__ import annotations

import os
import time

import torch

from lit_rlseq.bench import BenchResult, benchmark
from lit_rlseq.nn.txt2pi import Txt2PiConfig, Txt2PiEncoder

VOCAB_SIZE = 300
LEARNER_ROWS, LEARNER_EPISODES = 24 * 81, 25
ACTOR_ROWS = 64
BENCH_THREADS = 2
GOAL_DEDUPE_SPEEDUP = 2.0  # with ~25 distinct texts in 1944 rows, text encoding must stop dominating


def rtfm_like_batch(rows: int, episodes: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A batch [rows, ...] whose rows come from `episodes` episodes in contiguous runs (as in an unroll)."""

    def words(shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randint(1, VOCAB_SIZE, shape, generator=generator)

    def lengths(low: int, high: int, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randint(low, high + 1, shape, generator=generator)

    episode = torch.arange(rows) * episodes // rows
    h = w = 6
    # Per episode: one wiki, one task, two inventories (before / after picking up an item).
    inventory_choice = torch.randint(0, 2, (rows,), generator=generator)
    inv_ids, inv_len = words((episodes, 2, 8)), lengths(1, 3, (episodes, 2))
    agent = torch.randint(0, h, (rows, 2), generator=generator)
    row_col = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"), dim=-1)
    rel_pos = (row_col[None] - agent[:, None, None]).float() / torch.tensor([h, w])
    return {
        "name": words((rows, h, w, 1, 8)),
        "name_len": lengths(1, 2, (rows, h, w, 1)),
        "wiki": words((episodes, 80))[episode],
        "wiki_len": lengths(40, 80, (episodes,))[episode],
        "task": words((episodes, 40))[episode],
        "task_len": lengths(4, 8, (episodes,))[episode],
        "inv": inv_ids[episode, inventory_choice],
        "inv_len": inv_len[episode, inventory_choice],
        "rel_pos": rel_pos,
    }


def forward(encoder: Txt2PiEncoder, obs: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        encoder(obs)


def forward_backward(encoder: Txt2PiEncoder, obs: dict[str, torch.Tensor]) -> None:
    encoder.zero_grad(set_to_none=True)
    film_map, rep = encoder(obs)
    (rep.sum() + film_map.mean()).backward()


def best_seconds(fn, encoder: Txt2PiEncoder, obs: dict[str, torch.Tensor], repeats: int) -> float:
    """The fastest of `repeats` timed calls after a warm-up (the least disturbed by other processes)."""
    fn(encoder, obs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(encoder, obs)
        times.append(time.perf_counter() - start)
    return min(times)


@benchmark("txt2pi.forward")
def bench_txt2pi_forward(scale: float = 1.0) -> BenchResult:
    threads = torch.get_num_threads()
    # The learner's budget on the 2-core target machine; never more than the caller allows (tests run 1).
    torch.set_num_threads(min(BENCH_THREADS, threads))
    try:
        generator = torch.Generator().manual_seed(0)
        repeats = max(1, round(5 * scale))
        encoders = {}
        for dedupe in (True, False):
            torch.manual_seed(0)
            encoders[dedupe] = Txt2PiEncoder(Txt2PiConfig(vocab_size=VOCAB_SIZE, dedupe_text=dedupe))
        figures: dict[str, float] = {}
        learner_rows, actor_rows = max(2, round(LEARNER_ROWS * scale)), max(2, round(ACTOR_ROWS * scale))
        batches = {
            "learner": rtfm_like_batch(learner_rows, max(1, round(LEARNER_EPISODES * scale)), generator),
            "actor": rtfm_like_batch(actor_rows, actor_rows, generator),
        }
        for obs in batches.values():
            for dedupe, encoder in encoders.items():
                tag = f"n{len(obs['wiki'])}_{'dedupe' if dedupe else 'every_row'}"
                figures[f"forward_ms_{tag}"] = 1e3 * best_seconds(forward, encoder, obs, repeats)
                figures[f"forward_backward_ms_{tag}"] = 1e3 * best_seconds(forward_backward, encoder, obs, repeats)
        learner = f"forward_backward_ms_n{learner_rows}"
        speedup = figures[f"{learner}_every_row"] / figures[f"{learner}_dedupe"]
        return BenchResult(
            name="txt2pi.forward",
            figures=figures,
            ratio=speedup,
            goal=GOAL_DEDUPE_SPEEDUP,
            note="paper sizes; ratio = learner-batch forward+backward speed-up from text dedupe",
            extra={"threads": torch.get_num_threads(), "load_average_1min": os.getloadavg()[0]},
        )
    finally:
        torch.set_num_threads(threads)
