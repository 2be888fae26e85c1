"""LDD's language dynamics model for text-grid environments: (obs_t, a_t) -> the words of every cell of obs_{t+1}.

Definition
----------
The model reads one text-grid observation ``obs_t`` (the keys of ``lit_rlseq.envs``: name grid, wiki, task,
inventory, rel_pos) and the action ``a_t`` taken in it, and predicts, for every cell (h, w) of the *next*
observation's ``name`` grid, that cell's words as a sequence: the words of placement 0,
``name[h, w, 0, :name_len[h, w, 0]]``, followed by an end marker. The end marker is id 0, the padding id, read
as "end of name": the position right after the last word must predict 0, positions after it are ignored. A
cell that will hold "fire goblin" has targets ``[fire, goblin, 0]``, one that will hold "you" ``[you, 0]``.

The reference stacks 4 frames as input but its featuriser only handles one; one frame plus the action is the
clean definition (in stationary variants the next frame is then a function of the input).

Architecture
------------
* encoder: a ``Txt2PiEncoder`` (the policy's architecture, own weights) -> the last FiLM map [N, C, H, W] and
  the representation [N, d_rep]; LDD later copies these weights into its policy;
* per cell: ``context = tanh(Linear([FiLM map cell (C); rep (d_rep); action embedding (d_action)]))`` (d_cell);
* a teacher-forced GRU decoder per cell, started from the context: the input at position 0 is a learned start
  vector, at position k the encoder's embedding of target word k-1;
* logits: ``Linear(d_cell -> d_word)`` of each decoder state, scored against the encoder's word embedding
  matrix (tied) plus a per-word bias. The embedding's row 0 (padding) is fixed at zero, so the end marker is
  scored against a learned vector of its own instead.

Placements: one per cell (P = 1, as in RTFM). The placements of a cell have no canonical order in general
(Messenger shuffles its entity layers), so per-placement targets would be ill-defined; a next-observation
name grid with P > 1 is a ``DataError``.

Metrics (``cell_hits``)
-----------------------
All teacher-forced, argmax per position: *token accuracy* over target positions (the end marker included)
and *cell exact match* (every target position of the cell right), both also restricted to cells whose words
change between obs_t and obs_{t+1}. Teacher-forced exact match equals greedy-decoding exact match: if every
teacher-forced argmax is the target, greedy decoding feeds itself exactly the teacher's inputs, so it emits
the same words and stops at the same end marker; conversely, if greedy decoding emits the target sequence,
its inputs were the teacher's at every position, so the teacher-forced argmaxes are those words. (Token
accuracy differs: after a greedy mistake the inputs differ.) ``generate`` decodes greedily.

The "nothing moves" baseline (``copy_predictions``) predicts obs_{t+1} = obs_t: the sequence [obs_t's words of
the cell, 0], scored on the same target positions (a position after its end marker is wrong). On a changed
cell its exact match is 0 by definition; its token accuracy there is not (e.g. "you" -> "empty" keeps the
end marker right).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from lit_rlseq.errors import DataError, UserError
from lit_rlseq.nn.text import length_mask
from lit_rlseq.nn.txt2pi import Txt2PiConfig, Txt2PiEncoder

END_OF_NAME = 0  # the padding id doubles as the end marker of a cell's word sequence
NO_PREDICTION = -1  # a baseline position after its end marker: equal to no target


@dataclass
class TextGridDynamicsConfig:
    encoder: Txt2PiConfig  # the encoder's sizes; its num_actions sizes the action embedding
    d_action: int = 32  # action embedding size (the reference has no action input; our choice)
    d_cell: int = 100  # per-cell context and decoder state size (the reference's d_emb = the word size, 100)

    def __post_init__(self) -> None:
        for key in ("d_action", "d_cell"):
            if getattr(self, key) < 1:
                raise UserError(f"TextGridDynamicsConfig.{key}={getattr(self, key)} must be a positive integer")


class CellTargets(NamedTuple):
    ids: torch.Tensor  # int64 [N, H, W, T]: the cell's words, then END_OF_NAME, then END_OF_NAME padding
    mask: torch.Tensor  # bool [N, H, W, T]: True on the words and the end marker (the scored positions)


class CellHits(NamedTuple):
    """Per-element correctness (bool, 1-D); the mean of each is the metric of the same name."""

    token: torch.Tensor  # every target position of every cell
    cell: torch.Tensor  # every cell: all its target positions right
    changed_token: torch.Tensor  # target positions of cells whose words change
    changed_cell: torch.Tensor  # cells whose words change


def _placement_zero(name: torch.Tensor, name_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """name [N, H, W, P, Nw], name_len [N, H, W, P] -> placement 0: [N, H, W, Nw], [N, H, W]; P must be 1."""
    if name.dim() != 5 or name_len.shape != name.shape[:4]:
        raise DataError(
            f"name grid has shape {tuple(name.shape)} and lengths {tuple(name_len.shape)}, expected "
            "[N, H, W, P, Nw] and [N, H, W, P]"
        )
    if name.shape[3] != 1:
        raise DataError(
            f"name grid has {name.shape[3]} placements per cell (shape {tuple(name.shape)}): the dynamics model "
            "predicts one placement per cell (P = 1, as in RTFM), since placements have no canonical order"
        )
    return name[..., 0, :], name_len[..., 0]


def cell_targets(name: torch.Tensor, name_len: torch.Tensor) -> CellTargets:
    """The decoder targets of a next-observation name grid; T = longest name in the batch + 1."""
    words, lengths = _placement_zero(name, name_len)
    length = int(lengths.max()) + 1 if lengths.numel() else 1
    positions = torch.arange(length, device=words.device)
    inside = positions < lengths.unsqueeze(-1)
    padded = torch.nn.functional.pad(words, (0, max(0, length - words.shape[-1])))[..., :length]
    ids = torch.where(inside, padded, END_OF_NAME)
    return CellTargets(ids=ids, mask=positions <= lengths.unsqueeze(-1))


def copy_predictions(name: torch.Tensor, name_len: torch.Tensor, length: int) -> torch.Tensor:
    """The "nothing moves" baseline's sequences [N, H, W, length]: obs_t's words, END_OF_NAME, NO_PREDICTION."""
    words, lengths = _placement_zero(name, name_len)
    positions = torch.arange(length, device=words.device)
    padded = torch.nn.functional.pad(words, (0, max(0, length - words.shape[-1])))[..., :length]
    sequence = torch.where(positions < lengths.unsqueeze(-1), padded, NO_PREDICTION)
    return sequence.masked_fill(positions == lengths.unsqueeze(-1), END_OF_NAME)


def changed_cells(
    name: torch.Tensor, name_len: torch.Tensor, next_name: torch.Tensor, next_name_len: torch.Tensor
) -> torch.Tensor:
    """bool [N, H, W]: the cell's words (placement 0, within its length) differ between the two grids."""
    words, lengths = _placement_zero(name, name_len)
    next_words, next_lengths = _placement_zero(next_name, next_name_len)
    clean = words.masked_fill(~length_mask(lengths, words.shape[-1]), 0)
    next_clean = next_words.masked_fill(~length_mask(next_lengths, next_words.shape[-1]), 0)
    return (lengths != next_lengths) | (clean != next_clean).any(dim=-1)


def cell_hits(predicted: torch.Tensor, targets: CellTargets, changed: torch.Tensor) -> CellHits:
    """predicted [N, H, W, T] (argmax ids, or a baseline's sequences) against the targets; changed [N, H, W]."""
    right = predicted == targets.ids
    cell_right = (right | ~targets.mask).all(dim=-1)
    changed_positions = targets.mask & changed.unsqueeze(-1)
    return CellHits(
        token=right[targets.mask],
        cell=cell_right.flatten(),
        changed_token=right[changed_positions],
        changed_cell=cell_right[changed],
    )


class TextGridDynamics(nn.Module):
    """obs_t [N, ...] and a_t [N] -> per-cell word logits of obs_{t+1} [N, H, W, T, vocab] (teacher-forced)."""

    def __init__(self, config: TextGridDynamicsConfig):
        super().__init__()
        self.config = config
        enc = config.encoder
        self.encoder = Txt2PiEncoder(enc)
        self.action_embedding = nn.Embedding(enc.num_actions, config.d_action)
        self.cell_context = nn.Linear(enc.channels[-1] + enc.d_rep + config.d_action, config.d_cell)
        self.start = nn.Parameter(torch.randn(enc.d_word) * 0.1)  # decoder input at position 0
        self.decoder = nn.GRU(enc.d_word, config.d_cell, batch_first=True)
        self.to_word = nn.Linear(config.d_cell, enc.d_word)
        self.end_word = nn.Parameter(torch.randn(enc.d_word) * 0.1)  # scores END_OF_NAME (embedding row 0 is 0)
        self.word_bias = nn.Parameter(torch.zeros(enc.vocab_size))

    def forward(self, obs: dict[str, torch.Tensor], action: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """targets [N, H, W, T] (``cell_targets(...).ids``) -> logits [N, H, W, T, vocab_size]."""
        context = self.contexts(obs, action)
        n, h, w, t = targets.shape
        if context.shape[:3] != (n, h, w):
            raise DataError(
                f"targets have shape {tuple(targets.shape)} but the observation's grid is {tuple(context.shape[:3])}"
            )
        previous = self.encoder.embedding(targets[..., :-1].reshape(n * h * w, t - 1))
        start = self.start.expand(previous.shape[0], 1, -1)
        states, _ = self.decoder(torch.cat([start, previous], dim=1), context.reshape(1, -1, context.shape[-1]))
        return self.word_logits(states).view(n, h, w, t, -1)

    def contexts(self, obs: dict[str, torch.Tensor], action: torch.Tensor) -> torch.Tensor:
        """The per-cell decoder start states [N, H, W, d_cell]."""
        encoded = self.encoder(obs)
        n, _, h, w = encoded.film_map.shape
        if action.shape != (n,):
            raise DataError(f"action has shape {tuple(action.shape)}, expected [{n}] (one action per observation)")
        num_actions = self.config.encoder.num_actions
        if action.numel() and (action.min() < 0 or action.max() >= num_actions):
            raise DataError(
                f"actions range over [{int(action.min())}, {int(action.max())}] but num_actions={num_actions}"
            )
        per_observation = torch.cat([encoded.rep, self.action_embedding(action)], dim=-1)
        features = torch.cat(
            [encoded.film_map.permute(0, 2, 3, 1), per_observation[:, None, None, :].expand(n, h, w, -1)], dim=-1
        )
        return torch.tanh(self.cell_context(features))

    def word_logits(self, states: torch.Tensor) -> torch.Tensor:
        """Decoder states [..., d_cell] -> [..., vocab_size], tied to the encoder's word embedding."""
        words = torch.cat([self.end_word[None], self.encoder.embedding.weight[1:]], dim=0)
        return self.to_word(states) @ words.T + self.word_bias

    @torch.no_grad()
    def generate(
        self, obs: dict[str, torch.Tensor], action: torch.Tensor, max_words: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy decoding of the next name grid: ``(name [N, H, W, 1, max_words], name_len [N, H, W, 1])``.

        A cell's name ends at its first END_OF_NAME; one that emits none within ``max_words`` words has
        ``max_words`` words.
        """
        context = self.contexts(obs, action)
        n, h, w, _ = context.shape
        state = context.reshape(1, -1, context.shape[-1])
        inputs = self.start.expand(state.shape[1], 1, -1)
        words = torch.zeros(state.shape[1], max_words, dtype=torch.long, device=context.device)
        ended = torch.zeros(state.shape[1], dtype=torch.bool, device=context.device)
        lengths = torch.full((state.shape[1],), max_words, dtype=torch.long, device=context.device)
        for k in range(max_words + 1):
            output, state = self.decoder(inputs, state)
            word = self.word_logits(output[:, 0]).argmax(dim=-1)
            ends_now = ~ended & (word == END_OF_NAME)
            lengths[ends_now] = k
            ended |= ends_now
            if k == max_words or ended.all():
                break
            words[:, k] = word.masked_fill(ended, 0)
            inputs = self.encoder.embedding(word)[:, None]
        return words.view(n, h, w, 1, max_words), lengths.view(n, h, w, 1)
