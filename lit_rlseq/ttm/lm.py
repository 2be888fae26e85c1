"""The TTM language model: a tokenizer trained on the game text, the fine-tune DataModule, the LM and the student.

* ``train_tokenizer``: byte-level BPE (the ``tokenizers`` library) trained on the JSONL's prompts and
  completions; a newline is always its own token (generation stops there).
* ``FinetuneDataModule``: the JSONL written by ``write_finetune`` -> token ids with the loss on the completion
  only. A prompt that does not fit the block is cut from the left (its oldest steps go first) and the count of
  such examples is printed; a completion that does not fit is an error.
* ``TextLM``: the project's GPT (``lit_rlseq.nn.gpt``) trained from scratch as a thin LightningModule, or a
  Hugging Face causal LM from a local directory (``hf_model``, extra ``hf``: its tokenizer and weights, never
  downloaded) fine-tuned the same way; and the LM student: it builds the reference's prompt at high fitness,
  samples (top_p 0.95, temperature 1, stop at newline, at most 400 new tokens), parses ``action: [ ... ]``
  and optionally filters it to a valid action (``filter``: ``none`` as the original, ``closest`` = the most
  similar valid action by characters, ``likelihood`` = the valid action the LM finds most likely after the
  generated text up to ``action: [``).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from lit_rlseq.errors import DataError, MissingArtifactError, UserError
from lit_rlseq.nn.gpt import GPT, GPTConfig, generate_with_cache
from lit_rlseq.ttm.agents import Act, TextAgent
from lit_rlseq.ttm.formats import FORMATS, HISTORY, parse_action, play_prompt
from lit_rlseq.ttm.trajectory import TextTrajectory

PAD, NEWLINE = "<pad>", "\n"
FILTERS = ("none", "closest", "likelihood")
IGNORE = -100


# -- tokenizer ------------------------------------------------------------------------------------------------
def train_tokenizer(texts: list[str], vocab_size: int = 2048):
    """A byte-level BPE tokenizer trained on ``texts``; ``\\n`` is a token of its own and id 0 is padding."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\n"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def load_tokenizer(json_text: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(json_text)


def newline_id(tokenizer) -> int:
    ids = tokenizer.encode(NEWLINE, add_special_tokens=False).ids
    if len(ids) != 1:
        raise DataError(f"the tokenizer encodes a newline as {len(ids)} tokens; train it with train_tokenizer")
    return ids[0]


def newline_ids(tokenizer) -> list[int]:
    """Every token whose text holds a newline (generation stops at the first): just ``newline_id`` for the
    tokenizers trained here; also merged whitespace such as ``\\n\\n`` for e.g. GPT-2's."""
    newline_id(tokenizer)
    size = tokenizer.get_vocab_size()
    texts = tokenizer.decode_batch([[i] for i in range(size)], skip_special_tokens=False)
    return [i for i, text in enumerate(texts) if NEWLINE in text]


# -- data -----------------------------------------------------------------------------------------------------
def read_jsonl(path: str | Path) -> list[dict[str, str]]:
    path = Path(path)
    if not path.exists():
        raise MissingArtifactError("fine-tune JSONL", str(path),
                                   produce_with="lightning write_finetune --config configs/ttm_cooking_write_finetune.yaml")
    examples = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                example = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{number}: not JSON ({e})") from e
            if not (isinstance(example, dict) and isinstance(example.get("prompt"), str)
                    and isinstance(example.get("completion"), str)):
                keys = sorted(example) if isinstance(example, dict) else type(example).__name__
                raise DataError(f"{path}:{number}: a fine-tune line needs string fields 'prompt' and 'completion', "
                                f"got {keys}")
            examples.append(example)
    if not examples:
        raise DataError(f"{path} holds no examples")
    return examples


def encode_example(tokenizer, prompt: str, completion: str, block_size: int) -> tuple[list[int], int, bool]:
    """Token ids of prompt + completion and where the completion starts; the prompt is cut from the left so that
    the whole fits ``block_size + 1`` tokens (inputs and shifted targets). Returns (ids, start, cut)."""
    p, c = tokenizer.encode(prompt).ids, tokenizer.encode(completion, add_special_tokens=False).ids
    if len(c) + 1 > block_size:
        raise DataError(f"a completion of {len(c)} tokens does not fit block_size {block_size}: raise "
                        f"model.block_size / data.block_size")
    keep = block_size + 1 - len(c)
    cut = len(p) > keep
    p = p[-keep:]
    return p + c, len(p), cut


class TokenizedExamples(Dataset):
    def __init__(self, rows: list[tuple[list[int], int]]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.rows[i]


def collate(batch: list[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
    """Right-padded inputs ``[B, T]`` and targets with IGNORE outside the completion (and on padding)."""
    width = max(len(ids) for ids, _ in batch) - 1
    x = torch.zeros(len(batch), width, dtype=torch.long)
    y = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    for row, (ids, start) in enumerate(batch):
        ids_t = torch.tensor(ids, dtype=torch.long)
        x[row, : len(ids) - 1] = ids_t[:-1]
        targets = ids_t[1:].clone()
        targets[: start - 1] = IGNORE  # predicting prompt tokens is not trained
        y[row, : len(ids) - 1] = targets
    return {"x": x, "y": y}


class FinetuneDataModule(L.LightningDataModule):
    def __init__(self, path: str, tokenizer: str | None = None, vocab_size: int = 2048, block_size: int = 512,
                 batch_size: int = 16, val_fraction: float = 0.1, seed: int = 0, num_workers: int = 0,
                 hf_model: str | None = None):
        """
        Args:
            path: the JSONL file written by ``write_finetune``.
            tokenizer: a tokenizer JSON file to use; None: train one on this file's text (``vocab_size``), or
                the tokenizer of ``hf_model``.
            block_size: the model's context (must equal model.block_size).
            val_fraction: share of the examples held out for validation (by example, seeded).
            hf_model: a local Hugging Face causal LM directory (extra ``hf``; never downloaded): the data is
                tokenized with its tokenizer and the model (``model.hf_model``, linked from here) is fine-tuned
                from its weights.
        """
        super().__init__()
        self.path, self.block_size, self.batch_size = path, block_size, batch_size
        self.hf_model = hf_model
        self.examples = read_jsonl(path)
        if hf_model is not None:
            if tokenizer is not None:
                raise UserError("give data.tokenizer or data.hf_model (whose tokenizer is used), not both")
            from lit_rlseq.nn.hf_lm import hf_tokenizer_json

            self.tokenizer_json = hf_tokenizer_json(hf_model)
        elif tokenizer is not None:
            if not Path(tokenizer).exists():
                raise MissingArtifactError("tokenizer JSON", tokenizer)
            self.tokenizer_json = Path(tokenizer).read_text()
        else:
            texts = [e["prompt"] + e["completion"] for e in self.examples]
            self.tokenizer_json = train_tokenizer(texts, vocab_size).to_str()
        tok = load_tokenizer(self.tokenizer_json)
        newline_id(tok)
        rows, cut = [], 0
        for e in self.examples:
            ids, start, was_cut = encode_example(tok, e["prompt"], e["completion"], block_size)
            rows.append((ids, start))
            cut += was_cut
        if cut:
            rank_zero_info(f"FinetuneDataModule: {cut} of {len(rows)} prompts were cut from the left to fit "
                           f"block_size {block_size} (their oldest steps dropped)")
        self.cut_prompts = cut
        # The longest completion: the student keeps this much room after its prompt, so its completions start
        # where the training completions did (the model's positions are learnt).
        self.completion_tokens = max(len(ids) - start for ids, start in rows)
        order = np.random.default_rng(seed).permutation(len(rows))
        n_val = int(round(val_fraction * len(rows))) if len(rows) > 1 else 0
        self.val_rows = [rows[i] for i in order[:n_val]]
        self.train_rows = [rows[i] for i in order[n_val:]]
        self.num_workers = num_workers

    @property
    def tokenizer(self) -> str:
        """The tokenizer (JSON), linked into the model by the CLI."""
        return self.tokenizer_json

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TokenizedExamples(self.train_rows), batch_size=self.batch_size, shuffle=True,
                          collate_fn=collate, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        rows = self.val_rows or self.train_rows[: self.batch_size]
        return DataLoader(TokenizedExamples(rows), batch_size=self.batch_size, collate_fn=collate,
                          num_workers=self.num_workers)


class HFFinetuneDataModule(FinetuneDataModule):
    """``FinetuneDataModule`` for a Hugging Face causal LM: ``hf_model`` (a local directory) is required."""

    def __init__(self, path: str, hf_model: str, vocab_size: int = 2048, block_size: int = 512, batch_size: int = 16,
                 val_fraction: float = 0.1, seed: int = 0, num_workers: int = 0):
        """
        Args:
            path: the JSONL file written by ``write_finetune``.
            hf_model: the local Hugging Face causal LM directory (e.g. a GPT-2 saved with save_pretrained):
                its tokenizer tokenizes the data and the model is fine-tuned from its weights. Never downloaded.
            vocab_size: unused (the model's tokenizer is used); kept so the base config's value may stay.
            block_size, batch_size, val_fraction, seed, num_workers: as FinetuneDataModule.
        """
        if not hf_model:
            raise UserError("data.hf_model is required: the local directory of a Hugging Face causal LM, e.g. "
                            "--data.init_args.hf_model=/models/gpt2 (nothing is downloaded)")
        super().__init__(path, None, vocab_size, block_size, batch_size, val_fraction, seed, num_workers, hf_model)


# -- filtering ------------------------------------------------------------------------------------------------
def closest_valid_action(action: str, valid: list[str]) -> str:
    """The valid action most similar to ``action`` (difflib's ratio; ties: the first in ``valid``)."""
    if not valid or action in valid:
        return action
    scores = [difflib.SequenceMatcher(None, action, v).ratio() for v in valid]
    return valid[int(np.argmax(scores))]


# -- the model ------------------------------------------------------------------------------------------------
class TextLM(TextAgent):
    """The causal LM (the GPT from scratch, or a local Hugging Face LM) fine-tuned on prompt/completion examples,
    and the student that plays."""

    annotates = False

    def __init__(
        self,
        tokenizer: str | None = None,
        init_from: str | None = None,
        n_layer: int = 4,
        n_head: int = 4,
        n_embd: int = 256,
        block_size: int = 512,
        dropout: float = 0.1,
        lr: float = 3e-4,
        weight_decay: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.95),
        format: str = "hindsight_expectation_str",
        history: int = HISTORY,
        filter: str = "none",
        top_p: float = 0.95,
        temperature: float = 1.0,
        max_new_tokens: int = 400,
        name: str = "lm_student",
        seed: int = 0,
        hf_model: str | None = None,
    ):
        """
        Args:
            tokenizer: the tokenizer JSON (linked from the data by the CLI); None with ``init_from``: the
                checkpoint's.
            init_from: a TextLM checkpoint to start from (play: the trained student; fit: continue training);
                its architecture is used and its tokenizer must equal ``tokenizer`` when both are given.
            n_layer, n_head, n_embd, block_size, dropout: the GPT (block_size must equal data.block_size); with
                ``hf_model`` only block_size counts (the context used; at most the model's positions).
            lr, weight_decay, betas: AdamW.
            format: the prompt format the student plays with (as written by write_finetune).
            history: past steps in the student's prompt (the reference: 6).
            filter: none (the original), closest or likelihood: map the parsed action to a valid action.
            top_p, temperature, max_new_tokens: sampling (the reference's: 0.95, 1, 400; stop at newline).
            name: the agent name recorded in the rollouts.
            seed: of the student's sampling.
            hf_model: a local Hugging Face causal LM directory (linked from ``data.hf_model``): fine-tune its
                weights with its tokenizer instead of the GPT. Its checkpoints hold the architecture, so the
                student needs only ``init_from``.
        """
        super().__init__()
        if format not in FORMATS:
            raise UserError(f"model.format={format!r} is not one of {FORMATS}")
        if filter not in FILTERS:
            raise UserError(f"model.filter={filter!r} is not one of {FILTERS}")
        state, hf_config, completion_tokens = None, None, None
        if init_from is not None:
            if not Path(init_from).is_file():
                raise MissingArtifactError("TextLM checkpoint (model.init_from)", init_from,
                                           produce_with="lightning fit --config configs/ttm_cooking_finetune.yaml")
            checkpoint = torch.load(init_from, map_location="cpu", weights_only=False)
            hp = checkpoint.get("hyper_parameters", {})
            if "tokenizer" not in hp:
                raise DataError(f"{init_from} is not a TextLM checkpoint (no tokenizer in its hyper_parameters)")
            if tokenizer is not None and tokenizer != hp["tokenizer"]:
                raise DataError(
                    f"the tokenizer of checkpoint {init_from} does not match the data's tokenizer (vocabulary sizes "
                    f"{load_tokenizer(hp['tokenizer']).get_vocab_size()} and "
                    f"{load_tokenizer(tokenizer).get_vocab_size()}); pass the checkpoint's tokenizer to the data "
                    "(data.tokenizer) or train from scratch"
                )
            tokenizer = hp["tokenizer"]
            n_layer, n_head, n_embd, block_size = (hp[k] for k in ("n_layer", "n_head", "n_embd", "block_size"))
            state = {k[len("gpt."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("gpt.")}
            hf_config = checkpoint.get("hf_config")
            completion_tokens = hp.get("completion_tokens")
        elif hf_model is not None:
            from lit_rlseq.nn.hf_lm import hf_tokenizer_json

            own = hf_tokenizer_json(hf_model)
            if tokenizer is not None and tokenizer != own:
                raise DataError(f"the data's tokenizer is not the one in {hf_model}; give the directory as "
                                "data.hf_model so the data is tokenized with it")
            tokenizer = own
        if tokenizer is None:
            raise UserError("TextLM needs a tokenizer: fit it with data lit_rlseq.ttm.lm.FinetuneDataModule (which "
                            "provides one) or give model.init_from=<a TextLM checkpoint>")
        self.save_hyperparameters(ignore=["init_from"])
        # What was built, not what was asked for: under the CLI the saved hyperparameters are the given arguments
        # (its defaults for a student that takes its architecture from init_from).
        self.hparams.update(tokenizer=tokenizer, n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size,
                            completion_tokens=completion_tokens)
        self.tok = load_tokenizer(tokenizer)
        self.stop_ids = newline_ids(self.tok)
        if hf_config is not None or (hf_model is not None and state is None):
            self.gpt = self._hf_lm(hf_model, hf_config, block_size)
        else:
            config = GPTConfig(vocab_size=self.tok.get_vocab_size(), block_size=block_size, n_layer=n_layer,
                               n_head=n_head, n_embd=n_embd, dropout=dropout)
            self.gpt = GPT(config)
        if state is not None:
            self.gpt.load_state_dict(state)
        self.name = name
        self.generator = torch.Generator().manual_seed(seed)

    def _hf_lm(self, hf_model: str | None, hf_config: dict | None, block_size: int):
        from lit_rlseq.nn.hf_lm import HFCausalLM

        lm = HFCausalLM.from_config(hf_config) if hf_config is not None else HFCausalLM.from_directory(hf_model)
        where = hf_model or "the checkpoint's model"
        if lm.vocab_size < self.tok.get_vocab_size():
            raise DataError(f"{where}: its embeddings have {lm.vocab_size} rows but its tokenizer has "
                            f"{self.tok.get_vocab_size()} tokens")
        if lm.max_positions is not None and block_size > lm.max_positions:
            raise UserError(f"model.block_size={block_size} exceeds the {lm.max_positions} positions of {where}; "
                            "lower model.block_size and data.block_size")
        return lm

    @property
    def is_hf(self) -> bool:
        return not isinstance(self.gpt, GPT)

    def engine(self) -> str:
        hp = self.hparams
        if self.is_hf:
            arch = f"hf {self.gpt.config_dict.get('model_type')} ({hp.hf_model or 'from checkpoint'}) ctx{hp.block_size}"
        else:
            arch = f"gpt L{hp.n_layer} H{hp.n_head} D{hp.n_embd} ctx{hp.block_size}"
        return f"{arch} {hp.format} filter={hp.filter} top_p={hp.top_p} T={hp.temperature}"

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The architecture of a Hugging Face LM, so the student loads the checkpoint without the directory.
        if self.is_hf:
            checkpoint["hf_config"] = self.gpt.config_dict

    # -- training
    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits, _ = self.gpt(batch["x"])
        return F.cross_entropy(logits.flatten(0, 1), batch["y"].flatten(), ignore_index=IGNORE)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["x"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.log("val/loss", self._loss(batch), prog_bar=True, batch_size=batch["x"].shape[0], sync_dist=True)

    def setup(self, stage: str) -> None:
        data = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        block = getattr(data, "block_size", None)
        if block is not None and block != self.hparams.block_size:
            raise UserError(f"data.block_size={block} differs from model.block_size={self.hparams.block_size}; "
                            "set both to the same value")
        if stage == "fit" and getattr(data, "completion_tokens", None) is not None:
            self.hparams.completion_tokens = data.completion_tokens  # saved with the checkpoint

    def on_fit_start(self) -> None:
        # The tokenizer beside the logs, so a later run can train on new data with the same one (data.tokenizer).
        if self.trainer.is_global_zero and self.trainer.log_dir:
            Path(self.trainer.log_dir).mkdir(parents=True, exist_ok=True)
            self.tok.save(str(Path(self.trainer.log_dir) / "tokenizer.json"))

    def configure_optimizers(self):
        hp = self.hparams
        return torch.optim.AdamW(self.gpt.optim_groups(hp.weight_decay), lr=hp.lr, betas=tuple(hp.betas))

    # -- playing
    def _room(self) -> int:
        """Tokens kept free for the completion: the longest training completion (recorded at fit) or, for a
        model that has none recorded, half the context; never more than max_new_tokens."""
        hp = self.hparams
        room = hp.get("completion_tokens") or hp.block_size // 2
        return max(1, min(hp.max_new_tokens, room, hp.block_size - 1))

    def _encode_prompt(self, prompt: str) -> torch.Tensor:
        ids = self.tok.encode(prompt).ids[-(self.hparams.block_size - self._room()):]
        return torch.tensor([ids], dtype=torch.long, device=self.device)

    @torch.no_grad()
    def complete(self, prompt: str) -> str:
        """One sampled completion of ``prompt`` (up to and including the first newline, at most max_new_tokens
        and never past the context: the prompt keeps its last ``block_size - _room()`` tokens, as long as the
        training prompts before the longest completion)."""
        hp = self.hparams
        idx = self._encode_prompt(prompt)
        # Within the context: past it, every new token would re-encode the whole (cropped) context.
        room = min(hp.max_new_tokens, hp.block_size - idx.shape[1])
        out = generate_with_cache(self.gpt, idx, room, hp.block_size, temperature=hp.temperature, top_p=hp.top_p,
                                  generator=self.generator, stop_token=self.stop_ids)
        new = out[0, idx.shape[1]:].tolist()
        stop_set = set(self.stop_ids)
        stops = [i for i, token in enumerate(new) if token in stop_set]
        text = self.tok.decode(new[: stops[0] + 1] if stops else new)
        return text[: text.index(NEWLINE) + 1] if NEWLINE in text else text

    @torch.no_grad()
    def action_likelihoods(self, prefix: str, actions: list[str]) -> list[float]:
        """log p(" <action> ]\\n" | prefix) under the LM for every candidate action (one batched pass)."""
        idx = self._encode_prompt(prefix)
        conts = [self.tok.encode(f" {a} ]{NEWLINE}", add_special_tokens=False).ids for a in actions]
        room = self.hparams.block_size - idx.shape[1]
        conts = [c[:room] for c in conts]
        logits, cache = self.gpt(idx, use_cache=True)
        first = F.log_softmax(logits[:, -1], dim=-1)[0]  # [V]
        width = max(len(c) for c in conts)
        batch = torch.zeros(len(conts), width, dtype=torch.long, device=self.device)
        for i, c in enumerate(conts):
            batch[i, : len(c)] = torch.tensor(c)
        scores = [float(first[c[0]]) for c in conts]
        if width > 1:
            rest, _ = self.gpt(batch[:, :-1], cache=cache.repeat(len(conts)))
            logp = F.log_softmax(rest, dim=-1)
            for i, c in enumerate(conts):
                scores[i] += float(sum(logp[i, j, c[j + 1]] for j in range(len(c) - 1)))
        return scores

    def act(self, trajectory: TextTrajectory, info: dict[str, Any]) -> Act:
        hp = self.hparams
        prompt = play_prompt(trajectory, hp.format, hp.history)
        completion = self.complete(prompt)
        action = parse_action(completion)
        valid = info.get("valid_actions") or []
        if hp.filter == "closest":
            action = closest_valid_action(action, valid)
        elif hp.filter == "likelihood" and valid:
            cut = completion.rfind("action: [")
            prefix = prompt + (completion[: cut + len("action: [")] if cut >= 0 else " action: [")
            scores = self.action_likelihoods(prefix, valid)
            action = valid[int(np.argmax(scores))]
        return Act(action, generated=completion)

    def on_predict_start(self) -> None:
        self.gpt.eval()
        # Sampling is one sequence, one token at a time: a second intra-op thread only adds synchronisation.
        # Measured on a loaded 2-core machine: 0.14 s per token with 2 threads, 0.009 s with 1.
        torch.set_num_threads(1)
