"""Why does the student write blank actions? Sample its completions on fine-tune prompts and count what goes wrong.

    python -m lit_rlseq.ttm.diagnose --checkpoint runs/ttm_cooking/lm/checkpoints/last.ckpt \
        --jsonl runs/ttm_cooking/teacher.jsonl --samples 40 [--room 192] [--out diagnosis.json]

For ``samples`` prompts spread evenly over the JSONL it reports (as JSON):

* ``boundary_same``: examples whose prompt and completion, tokenized apart (as in training), give the same ids
  as their concatenation (a merge across the boundary would teach a different split than the text has);
* ``ended_newline`` / ``hit_limit``: completions that stopped at a newline / ran out of room first;
* ``has_action``: completions with ``action: [``; ``blank``: an empty parsed action (the blank-action ratio's
  numerator); ``exact``: the teacher's action reproduced;
* ``well_formed``: completions with the whole shape of the format's completions;
* ``room``: tokens kept for the completion (``--room`` overrides the checkpoint's, to compare prompt lengths).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from lit_rlseq.ttm.formats import parse_action

SHAPES = {
    "hindsight_expectation_str": re.compile(r"^ expectation: .* summary: .* length: \d+ value: [\d.]+ action: \[ .* \]\n$"),
    "bc": re.compile(r"^ action: \[ .* \]\n$"),
}


def well_formed(completion: str, format: str) -> bool:
    """Whether a completion has the whole shape of the format's completions (one line, fields in order)."""
    return bool(SHAPES[format].match(completion))


def completion_stats(model, examples: list[dict[str, str]], samples: int) -> dict[str, int]:
    tok, fmt = model.tok, model.hparams.format
    stats = {"examples": len(examples), "room": model._room(), "samples": 0, "ended_newline": 0, "hit_limit": 0,
             "has_action": 0, "blank": 0, "exact": 0, "well_formed": 0}
    stats["boundary_same"] = sum(
        tok.encode(e["prompt"]).ids + tok.encode(e["completion"], add_special_tokens=False).ids
        == tok.encode(e["prompt"] + e["completion"]).ids for e in examples)
    for e in examples[:: max(1, len(examples) // samples)][:samples]:
        completion = model.complete(e["prompt"])
        action = parse_action(completion)
        stats["samples"] += 1
        stats["ended_newline"] += completion.endswith("\n")
        stats["hit_limit"] += not completion.endswith("\n")
        stats["has_action"] += "action: [" in completion
        stats["blank"] += not action
        stats["exact"] += action == parse_action(e["completion"])
        stats["well_formed"] += well_formed(completion, fmt)
    return stats


def main(argv: list[str] | None = None) -> int:
    import torch

    from lit_rlseq.ttm.lm import TextLM, read_jsonl

    parser = argparse.ArgumentParser(prog="python -m lit_rlseq.ttm.diagnose", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--jsonl", required=True, help="fine-tune examples (prompt/completion) to prompt with")
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--room", type=int, default=None, help="tokens kept for the completion (default: the "
                        "checkpoint's longest training completion)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = TextLM(init_from=args.checkpoint, seed=args.seed).eval()
    if args.room is not None:
        model.hparams.completion_tokens = args.room
    stats = completion_stats(model, read_jsonl(args.jsonl), args.samples)
    text = json.dumps(stats)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
