"""A rollout writer run as a separate process by the crash-safety and concurrent-reader tests.

    python rollout_writer_process.py STORE loop             append episodes 0, 1, 2, ... until killed
    python rollout_writer_process.py STORE partial N        append N episodes, then write episode N's data,
                                                            flush it, and wait (to be killed) before indexing it
    python rollout_writer_process.py STORE two-shards N     append N episodes to one shard, N more to another

After each indexed episode it prints "done <count>". Episode i is ``make_episode(i)``, which the tests
regenerate to check what they read back.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from lit_rlseq.rollouts.episode import Episode, EpisodeTags
from lit_rlseq.rollouts.store import RolloutStore

METADATA = {"env": "writer-process", "vocab": ["go", "north", "é"]}


def make_episode(i: int) -> Episode:
    """Episode i, the same in every process: frames big enough that a write takes milliseconds."""
    rng = np.random.default_rng(i)
    length = 40 + i % 13
    return Episode(
        {
            "frames": rng.integers(0, 256, size=(length + 1, 3, 64, 64), dtype=np.uint8),
            "hidden": rng.normal(size=(length + 1, 8)).astype(np.float32),
            "action": rng.integers(0, 15, size=length),
            "done": np.arange(length) == length - 1,
            "words": [f"step {t} of episode {i} é" * (t % 3) for t in range(length)],
            "valid": [[f"go {k} ✓" * (k % 2) for k in range((t + i) % 4)] for t in range(length + 1)],
        },
        EpisodeTags(run_id="writer-process", epoch=i, metadata={"episode": i}),
    )


def main() -> None:
    path, mode = sys.argv[1], sys.argv[2]
    store = RolloutStore(path)
    if mode == "loop":
        with store.writer(METADATA) as writer:
            i = 0
            while True:
                writer.append(make_episode(i))
                i += 1
                print(f"done {i}", flush=True)
    elif mode == "partial":
        n = int(sys.argv[3])
        with store.writer(METADATA) as writer:
            for i in range(n):
                writer.append(make_episode(i))
            print(f"done {n}", flush=True)
            real_flush = writer._file.flush

            def flush_then_wait() -> None:  # the first flush of an append comes after its data, before its index
                real_flush()
                print("data flushed, index not extended", flush=True)
                time.sleep(600)

            writer._file.flush = flush_then_wait
            writer.append(make_episode(n))
    elif mode == "two-shards":
        n = int(sys.argv[3])
        done = 0
        for shard in range(2):
            with store.writer(METADATA) as writer:
                for i in range(shard * n, (shard + 1) * n):
                    writer.append(make_episode(i))
                    done += 1
                    print(f"done {done}", flush=True)
                    time.sleep(0.01)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
