"""The ``write_finetune`` stage: select rollouts from the store by tags and write prompt/completion JSONL.

    lightning write_finetune --config configs/ttm_cooking_write_finetune.yaml
    lightning write_finetune --store runs/ttm/rollouts --finetune_path runs/ttm/teacher.jsonl \
        --format hindsight_expectation_str --allowed_splits [train] --allowed_agent_names [walkthrough] \
        --partitions [teacher] --epochs [0]

Every selection list is optional (empty = any value); there is no hard-coded epoch list. The batch fitness of
a rollout is computed from the mean final score of its batch: the selected rollouts with the same run_id,
epoch, partition, env and agent.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from lit_rlseq.errors import DataError, MissingArtifactError, UserError
from lit_rlseq.rollouts import RolloutStore
from lit_rlseq.ttm.formats import FORMATS, HISTORY, examples
from lit_rlseq.ttm.trajectory import episode_trajectory


def select(store: RolloutStore, run_ids: list[str] | None = None, epochs: list[int] | None = None,
           partitions: list[str] | None = None, allowed_splits: list[str] | None = None,
           allowed_agent_names: list[str] | None = None, envs: list[str] | None = None) -> list:
    filters = {}
    for tag, allowed in (("run_id", run_ids), ("epoch", epochs), ("partition", partitions),
                         ("split", allowed_splits), ("agent", allowed_agent_names), ("env", envs)):
        if allowed:
            filters[tag] = [str(a) for a in allowed] if tag == "run_id" else list(allowed)
    return store.episodes(**filters)


def write_finetune(
    store: str,
    finetune_path: str,
    format: str = "hindsight_expectation_str",
    run_ids: list[str] | None = None,
    epochs: list[int] | None = None,
    partitions: list[str] | None = None,
    allowed_splits: list[str] | None = None,
    allowed_agent_names: list[str] | None = None,
    envs: list[str] | None = None,
    history: int = HISTORY,
) -> int:
    """Writes one JSON object per line ({"prompt", "completion"}) and returns how many examples were written.

    Args:
        store: the rollout store written by ``lightning play``.
        finetune_path: the JSONL file to (over)write.
        format: hindsight_expectation_str (the reference's) or bc (plain behaviour cloning).
        run_ids, epochs, partitions, allowed_splits, allowed_agent_names, envs: tag selections (empty = all).
        history: steps shown per example, the current one included (the reference shows 6).
    """
    if format not in FORMATS:
        raise UserError(f"--format {format!r} is not one of {FORMATS}")
    if not Path(store).exists():
        raise MissingArtifactError("rollout store", store, produce_with="lightning play --config configs/ttm_cooking_teacher.yaml")
    rollouts = RolloutStore(store)
    refs = select(rollouts, run_ids, epochs, partitions, allowed_splits, allowed_agent_names, envs)
    if not refs:
        raise DataError(f"no rollouts in {store} match the selection (run_ids={run_ids}, epochs={epochs}, "
                        f"partitions={partitions}, splits={allowed_splits}, agents={allowed_agent_names}, "
                        f"envs={envs}); the store holds:\n{rollouts.describe_tags()}")
    batches: dict[tuple, list[float]] = defaultdict(list)
    for ref in refs:
        batches[_batch_key(ref.tags)].append(float(ref.tags.metadata.get("score", 0)))
    loaded = rollouts.load_fields(refs)
    out = Path(finetune_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(out, "w") as f:
        for i, ref in enumerate(refs):
            trajectory = episode_trajectory(loaded.episode(i))
            batch_mean = float(np.mean(batches[_batch_key(ref.tags)]))
            for example in examples(trajectory, format, batch_mean, history):
                f.write(json.dumps(example) + "\n")
                written += 1
    print(f"write_finetune: {written} examples from {len(refs)} rollouts -> {out}")
    return written


def _batch_key(tags) -> tuple:
    return (tags.run_id, tags.epoch, tags.partition, tags.env, tags.agent)


def main(args: list[str] | None = None) -> int:
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(prog="lightning write_finetune", description=__doc__, exit_on_error=False,
                            parser_mode="omegaconf")
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_function_arguments(write_finetune)
    config = parser.parse_args(args)
    config.pop("config", None)
    write_finetune(**{k: v for k, v in config.items() if k != "__path__"})
    return 0
