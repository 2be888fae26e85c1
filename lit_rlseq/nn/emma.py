"""EMMA (Hanjie et al., ICML 2021): the entity-mapper-with-multi-modal-attention policy for Messenger.

Reads Messenger observations (``entities`` [.., 10, 10, L], ``avatar`` [.., 10, 10, 1] entity ids, ``manual``
[.., S, W] word ids with ``manual_len`` [.., S]); see lit_rlseq.envs.messenger.

    text:    word embeddings h_t (learned; the original used frozen BERT states of size 768)
             key_s   = sum_t softmax_t(w_k . h_t) (W_k h_t)      value_s likewise with w_v, W_v   (768 -> 256)
    cells:   query_c = mean of the non-empty layers' entity embeddings of cell c (table 25 x 256)
             text_c  = sum_s softmax_s(query_c . key_s / 16) value_s / S   (0 for a cell without entities)
             cell_c  = (text_c + embedding of the avatar layer at c) / 2
    history: the last 3 frames' cell grids (copies of the first frame at an episode start) as 3 x 256 channels
    trunk:   Conv2d(768 -> 64, kernel 2) -> LeakyReLU -> 9 x 9 x 64 = 5184 features (flattened (y, x, channel))
    heads:   actor 5184 -> 128 -> 128 -> 5, critic 5184 -> 128 -> 128 -> 1 (LeakyReLU between)

Decisions (see docs/ldd_messenger.md):
* The padding positions of a sentence are masked out of the token softmax (with learned embeddings the
  padding state is a constant, not BERT's context-dependent state).
* History layout: ``frames_as_channels`` (default) stacks the three frames as channels of each cell, which is
  what the original meant; ``raw_reshape`` reproduces its reshape of the (3, 10, 10, 256) tensor's memory to
  (10, 10, 768), which mixes frames and cells.

Speed: the policy is fed whole time-major batches. Each manual is encoded once per run of steps that share it
(an episode); the token attention goes through a per-word table (E W^T has one row per vocabulary word), so
no [sentences, words, 768] tensor is built. Attention and the convolution touch only the few non-empty cells
(at most L + 1 of 100 per frame); a cell's conv contribution is computed once per distinct (entities, avatar,
manual) combination and shared by every frame and history slot that holds it, and by linearity it comes from
per-sentence (V W) and per-entity (E W) products, not from a [cells, 256] x [256, 768] product. The conv output is LeakyReLU(bias) everywhere
except at the positions an occupied cell reaches (about a fifth of the 81), so the heads' first layers
(5184 -> 2 x 128) read only those (``SparseFeatures.linear``). All of this is exact algebra (equal up to
float rounding); ``sparse=False`` runs the plain dense definition (for tests and the benchmark).

The network does not depend on the number of entity layers, so a policy trained on S1 continues on S2 (the
reference's curriculum). The recurrent state carries the two frames before the current one (entity and avatar ids), so the collector
and the learner see the same history across unroll boundaries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from lit_rlseq.nn.actor_critic import ActorCritic, PolicyOutput, State

GRID = 10
HISTORY = 3
KERNEL_OFFSETS = ((0, 0), (0, 1), (1, 0), (1, 1))  # (dy, dx) of the 2 x 2 kernel
POSITIONS = (GRID - 1) ** 2  # output positions of the convolution
# Below this many steps in a batch the heads read dense features: the sparse product's fixed cost (one gather
# of the 5184 x 256 weight) is larger than the dense product's (measured: 32 steps, acting).
SPARSE_HEADS_MIN_STEPS = 128


@dataclass
class EmmaConfig:
    vocab_size: int
    num_actions: int = 5
    max_layers: int = 5  # entity layers an observation may have (S1: 1, S2: 3, S3: 5); any number up to it
    d_word: int = 768  # word-embedding size (BERT's hidden size in the original)
    d_model: int = 256  # entity embeddings, keys and values
    num_entity_ids: int = 25  # rows of the entity embedding table (ids 0..16 occur; 0 = empty)
    conv_channels: int = 64
    hidden: int = 128
    history_layout: Literal["frames_as_channels", "raw_reshape"] = "frames_as_channels"
    sparse: bool = True

    @property
    def d_features(self) -> int:
        return self.conv_channels * (GRID - 1) ** 2


class EmmaOutput(NamedTuple):
    policy: PolicyOutput
    features: torch.Tensor  # [T, B, d_features]: the trunk's output (what LDD distils)


class SparseFeatures(NamedTuple):
    """The trunk's features [N, 81 * C] without building them: every output position that no occupied cell
    reaches holds LeakyReLU(conv bias) (``base``); the K positions some cell reaches (``index`` = step * 81 +
    position, sorted) hold ``base + delta``. Per step only a few of the 81 positions are reached."""

    base: torch.Tensor  # [C]
    index: torch.Tensor  # [K]
    delta: torch.Tensor  # [K, C]
    steps: int  # N

    def dense(self) -> torch.Tensor:
        """The features [N, 81 * C] (position-major: (y, x, channel))."""
        channels = self.base.shape[0]
        dense = self.base.expand(self.steps * POSITIONS, channels)
        dense = dense.index_put((self.index,), self.base + self.delta)
        return dense.view(self.steps, POSITIONS * channels)

    def linear(self, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``F.linear(self.dense(), weight, bias)`` [N, H] from the positions that differ from ``base`` only:

            W f_n + b = (b + sum_p W_p base) + sum_{p reached in step n} W_p delta_{n,p}

        with W_p the [H, C] block of W that reads position p. The second sum is a batched matmul over positions,
        each position's reached steps zero-padded to a common length. Some positions are reached in almost every
        step (Messenger places entities on fixed cells), most in few, so positions are grouped by how often
        they are reached (a group's counts are within a factor 2 of each other) and each group is one matmul."""
        hidden, channels = weight.shape[0], self.base.shape[0]
        blocks = weight.view(hidden, POSITIONS, channels)
        out = (bias + blocks.sum(1) @ self.base).expand(self.steps, hidden)
        if len(self.index) == 0:
            return out.contiguous()
        position, step = self.index % POSITIONS, self.index // POSITIONS
        counts = torch.bincount(position, minlength=POSITIONS)
        counts, by_count = counts.sort(descending=True, stable=True)
        group_of = torch.empty_like(by_count)
        group_of[by_count] = torch.arange(POSITIONS, device=by_count.device)  # position -> its place by count
        place = group_of[position]
        order = torch.argsort(place, stable=True)
        place, step, delta = place[order], step[order], self.delta[order]
        first_pair = counts.cumsum(0) - counts  # first pair of each place in the sorted pairs
        rank = torch.arange(len(place), device=place.device) - first_pair[place]  # the pair's row in its place
        counts_list = counts.tolist()
        groups = []  # [first, end) places of each group
        lo = 0
        while lo < POSITIONS and counts_list[lo] > 0:
            hi = lo + 1
            while hi < POSITIONS and 2 * counts_list[hi] > counts_list[lo]:
                hi += 1
            groups.append((lo, hi))
            lo = hi
        # One gather of the reached positions' weight blocks in count order, then views per group (split, not
        # slicing or indexing per group: their backward would allocate the whole block tensor once per group).
        sorted_blocks = blocks[:, by_count[:lo]].permute(1, 2, 0)  # [P', C, H], a strided view for bmm
        pairs = [sum(counts_list[lo:hi]) for lo, hi in groups]
        reached = []
        for (lo, hi), weights, rows_delta, places, ranks in zip(
                groups, sorted_blocks.split([hi - lo for lo, hi in groups]), delta.split(pairs), place.split(pairs),
                rank.split(pairs)):
            rows = (places - lo, ranks)
            padded = rows_delta.new_zeros(hi - lo, counts_list[lo], channels).index_put(rows, rows_delta)
            reached.append(torch.bmm(padded, weights)[rows])
        return out.index_add(0, step, torch.cat(reached))


class ManualEncoder(nn.Module):
    """Sentence keys and values by attention pooling over words (one pooling for keys, one for values)."""

    def __init__(self, config: EmmaConfig):
        super().__init__()
        self.words = nn.Embedding(config.vocab_size, config.d_word, padding_idx=0)
        self.key_score = nn.Linear(config.d_word, 1)
        self.value_score = nn.Linear(config.d_word, 1)
        self.key = nn.Linear(config.d_word, config.d_model)
        self.value = nn.Linear(config.d_word, config.d_model)

    def forward(self, manual: torch.Tensor, manual_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """manual [U, S, W], manual_len [U, S] -> keys, values [U, S, d_model]."""
        u, s, w = manual.shape
        ids = manual.reshape(u * s, w)
        lengths = manual_len.reshape(u * s, 1)
        # An empty sentence (only in padding rows, e.g. past an episode's end in a window) pools its first
        # position, the padding word, instead of an all-masked softmax (NaN, which would poison gradients).
        mask = torch.arange(w, device=ids.device) < lengths.clamp(min=1)
        embeddings = self.words.weight  # [V, d_word]
        pooled = []
        for score, project in ((self.key_score, self.key), (self.value_score, self.value)):
            # Per-word tables: score(h) and W h + b are affine in h, and the weights of a softmax sum to 1, so
            # sum_t a_t (W h_t + b) = (sum_t a_t onehot(w_t)) @ (E W^T) + b.
            logits = F.embedding(ids, score(embeddings)).squeeze(-1).masked_fill(~mask, float("-inf"))
            weights = torch.softmax(logits, dim=-1)  # [U*S, W]
            per_word = torch.zeros(u * s, embeddings.shape[0], device=ids.device, dtype=weights.dtype)
            per_word.scatter_add_(1, ids, weights)
            pooled.append((per_word @ F.linear(embeddings, project.weight) + project.bias).view(u, s, -1))
        return pooled[0], pooled[1]


class Emma(ActorCritic):
    def __init__(self, config: EmmaConfig):
        super().__init__()
        self.config = config
        self.num_actions = config.num_actions
        self.manual_encoder = ManualEncoder(config)
        self.entities = nn.Embedding(config.num_entity_ids, config.d_model, padding_idx=0)
        self.conv = nn.Conv2d(HISTORY * config.d_model, config.conv_channels, kernel_size=2)

        def head(out: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(config.d_features, config.hidden), nn.LeakyReLU(),
                                 nn.Linear(config.hidden, config.hidden), nn.LeakyReLU(),
                                 nn.Linear(config.hidden, out))

        self.actor = head(config.num_actions)
        self.critic = head(1)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.xavier_uniform_(p)
        with torch.no_grad():
            self.entities.weight[0].zero_()
            self.manual_encoder.words.weight[0].zero_()

    # -- state ---------------------------------------------------------------------------------------------
    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        layers = self.config.max_layers
        return (torch.zeros(batch_size, HISTORY - 1, GRID, GRID, layers, dtype=torch.long, device=device),
                torch.zeros(batch_size, HISTORY - 1, GRID, GRID, 1, dtype=torch.long, device=device))

    # -- forward -------------------------------------------------------------------------------------------
    def forward(self, obs: dict[str, torch.Tensor], first: torch.Tensor, state: State = ()) -> PolicyOutput:
        features, new_state = self._trunk(obs, first, state)
        return self._heads(features, first.shape, new_state)

    def forward_with_features(self, obs: dict[str, torch.Tensor], first: torch.Tensor, state: State = ()
                              ) -> EmmaOutput:
        features, new_state = self._trunk(obs, first, state)
        policy = self._heads(features, first.shape, new_state)
        dense = features.dense() if isinstance(features, SparseFeatures) else features
        return EmmaOutput(policy, dense.view(*first.shape, -1))

    def _heads(self, features: torch.Tensor | SparseFeatures, shape: torch.Size, new_state: State) -> PolicyOutput:
        steps, batch = shape
        if isinstance(features, SparseFeatures) and features.steps < SPARSE_HEADS_MIN_STEPS:
            features = features.dense()  # a few steps (acting): the dense product is cheaper than the gathers
        if isinstance(features, SparseFeatures):
            # The two heads' first layers as one matrix (one pass over the reached positions).
            first_actor, first_critic = self.actor[0], self.critic[0]
            hidden = features.linear(torch.cat([first_actor.weight, first_critic.weight]),
                                     torch.cat([first_actor.bias, first_critic.bias]))
            actor_hidden, critic_hidden = hidden.split([first_actor.out_features, first_critic.out_features], -1)
            logits, value = self.actor[1:](actor_hidden), self.critic[1:](critic_hidden)
        else:
            logits, value = self.actor(features), self.critic(features)
        return PolicyOutput(logits.view(steps, batch, -1), value.view(steps, batch), new_state)

    def trunk(self, obs: dict[str, torch.Tensor], first: torch.Tensor, state: State = ()
              ) -> tuple[torch.Tensor, State]:
        """The 5184 features of every step [T * B, d_features] and the state after the last step."""
        features, new_state = self._trunk(obs, first, state)
        return (features.dense() if isinstance(features, SparseFeatures) else features), new_state

    def _trunk(self, obs: dict[str, torch.Tensor], first: torch.Tensor, state: State = ()
               ) -> tuple[torch.Tensor | SparseFeatures, State]:
        steps, batch = first.shape
        device = first.device
        if not state:
            state = self.initial_state(batch, device)
        entities = obs["entities"].long()
        missing = self.config.max_layers - entities.shape[-1]
        if missing < 0:
            raise ValueError(f"EMMA was built for at most {self.config.max_layers} entity layers, got observations "
                             f"with {entities.shape[-1]} (shape {tuple(entities.shape)})")
        # Empty layers change nothing (a cell's query is the mean over its non-empty layers), so every stage's
        # observations are padded to max_layers: one network (and one checkpoint) serves S1, S2 and S3.
        entities = F.pad(entities, (0, missing))
        # The timeline of frames: the two from the state, then the T observed ones.
        frames_e = torch.cat([state[0].transpose(0, 1), entities], 0)  # [T+2, B, 10, 10, L]
        frames_a = torch.cat([state[1].transpose(0, 1), obs["avatar"].long()], 0)
        manual, manual_len = obs["manual"].long(), obs["manual_len"].long()
        frames_manual = torch.cat([manual[:1], manual[:1], manual], 0)  # state frames belong to obs 0's episode
        frames_manual_len = torch.cat([manual_len[:1], manual_len[:1], manual_len], 0)

        # History: frame ids (in the timeline, flattened with B) of each step's three slots, oldest first.
        t = torch.arange(steps, device=device)[:, None] + 2
        start = torch.where(first, t, torch.zeros_like(t)).cummax(0).values  # [T, B]: the episode's first frame
        slots = torch.stack([torch.maximum(t - 2, start), torch.maximum(t - 1, start), t.expand_as(start)], -1)
        frame_ids = (slots * batch + torch.arange(batch, device=device)[None, :, None]).reshape(steps * batch, 3)

        # Each manual once per run of equal manuals in a column (an episode's steps share it): exact, and much
        # cheaper than torch.unique over whole rows. inverse: the manual of every frame (time-major).
        rows = torch.cat([frames_manual.flatten(2), frames_manual_len], -1)  # [T+2, B, S*W + S]
        new = torch.ones(steps + 2, batch, dtype=torch.bool, device=device)
        new[1:] = (rows[1:] != rows[:-1]).any(-1)
        column_major = new.t().reshape(-1)
        inverse = (column_major.cumsum(0) - 1).view(batch, steps + 2).t().reshape(-1)
        distinct = rows.transpose(0, 1).reshape(-1, rows.shape[-1])[column_major]
        width = manual.shape[-2] * manual.shape[-1]
        keys, values = self.manual_encoder(distinct[:, :width].view(len(distinct), *manual.shape[-2:]),
                                           distinct[:, width:])

        frames_e = frames_e.reshape((steps + 2) * batch, GRID * GRID, -1)
        frames_a = frames_a.reshape((steps + 2) * batch, GRID * GRID)
        if self.config.sparse:
            features = self._sparse_trunk(frames_e, frames_a, inverse, keys, values, frame_ids)
        else:
            features = self._dense_trunk(frames_e, frames_a, inverse, keys, values, frame_ids)
        last = frame_ids.view(steps, batch, 3)[-1]  # the last step's slots 1, 2 are the next state
        shape_e, shape_a = state[0].shape[2:], state[1].shape[2:]
        new_state = (frames_e[last[:, 1:]].view(batch, 2, *shape_e), frames_a[last[:, 1:]].view(batch, 2, *shape_a))
        return features, new_state

    def _cells(self, entities: torch.Tensor, avatar: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
               ) -> torch.Tensor:
        """Cell features [M, d_model] of M cells: entities [M, L], avatar [M] ids; keys/values [M, S, d]."""
        present = entities > 0
        count = present.sum(-1, keepdim=True)
        query = self.entities(entities).sum(1) / count.clamp(min=1)
        scores = torch.einsum("md,msd->ms", query, keys) / math.sqrt(self.config.d_model)
        text = torch.einsum("ms,msd->md", torch.softmax(scores, -1), values) / keys.shape[1]
        text = text * (count > 0)
        return (text + self.entities(avatar)) / 2

    def _contributions(self, entities: torch.Tensor, avatar: torch.Tensor, manual: torch.Tensor, keys: torch.Tensor,
                       values: torch.Tensor) -> torch.Tensor:
        """``cell_c @ W`` for M cells (entities [M, L], avatar [M] ids, manual [M] rows of keys/values [U, S, d])
        and the convolution's weight W [d_model, 3 * 4 * C] ((slot, kernel offset, channel)), without building
        the cells' features. The cell feature (text_c + E[avatar_c]) / 2 is linear in the values and in the
        entity table E, and the query is a mean of rows of E (row 0, the padding, is zero), so

            cell_c @ W = (present_c / S * sum_s a_cs (V_s W) + (E W)[avatar_c]) / 2,
            a_c = softmax_s(sum_l (E K^T)[e_cl, s] / count_c / sqrt(d)),

        where V W has one row per sentence of a distinct manual (not per cell) and E K^T one per entity id."""
        cfg = self.config
        weight = self.conv.weight.view(cfg.conv_channels, HISTORY, cfg.d_model, 2, 2)
        weight = weight.permute(2, 1, 3, 4, 0).reshape(cfg.d_model, -1)
        # Row 0 (empty) is zero and, as nn.Embedding's padding row, gets no gradient.
        table = self.entities.weight.index_fill(0, entities.new_zeros(1), 0.0)
        count = (entities > 0).sum(-1, keepdim=True)
        entity_key = torch.einsum("ed,usd->ues", table, keys) / math.sqrt(cfg.d_model)  # [U, ids, S]
        scores = entity_key[manual[:, None], entities].sum(1) / count.clamp(min=1)  # [M, S]
        text = torch.bmm(torch.softmax(scores, -1).unsqueeze(1), (values @ weight)[manual]).squeeze(1)
        text = text * ((count > 0) / keys.shape[1])
        return (text + (table @ weight)[avatar]) / 2

    def _sparse_trunk(self, frames_e, frames_a, manual_of_frame, keys, values, frame_ids) -> SparseFeatures:
        cfg = self.config
        n = frame_ids.shape[0]
        occupied = (frames_e > 0).any(-1) | (frames_a > 0)  # [F, 100]
        frame, cell = occupied.nonzero(as_tuple=True)  # sorted by frame
        # A cell's contribution depends only on its entity ids (in any layer order), its avatar id and, when it
        # holds entities, its manual: computed once per distinct combination (an episode's cells repeat them).
        entities, avatar = frames_e[frame, cell].sort(-1).values, frames_a[frame, cell]
        manual = torch.where((entities > 0).any(-1), manual_of_frame[frame], 0)
        key = manual
        for ids in (avatar, *entities.unbind(-1)):
            key = key * cfg.num_entity_ids + ids
        distinct, kind = torch.unique(key, return_inverse=True)  # kind: each cell's combination
        example = torch.empty_like(distinct).scatter_(0, kind, torch.arange(len(kind), device=kind.device))
        # Every combination's contribution to every (slot, kernel offset): [D, 3, 4, C].
        contributions = self._contributions(entities[example], avatar[example], manual[example], keys, values)
        contributions = contributions.view(len(distinct), HISTORY, 4, cfg.conv_channels)

        # (step, slot) pairs -> the rows of their frame.
        counts = torch.bincount(frame, minlength=frames_e.shape[0])
        starts = torch.cumsum(counts, 0) - counts
        pair_frame = frame_ids.reshape(-1)  # [N*3], pair p = step * 3 + slot
        pair_count = counts[pair_frame]
        total = int(pair_count.sum())
        pair = torch.repeat_interleave(torch.arange(len(pair_frame), device=frame.device), pair_count, output_size=total)
        offset_in_pair = torch.arange(total, device=frame.device) - torch.repeat_interleave(
            torch.cumsum(pair_count, 0) - pair_count, pair_count, output_size=total)
        row = starts[pair_frame][pair] + offset_in_pair
        step, slot, position = pair // HISTORY, pair % HISTORY, cell[row]
        if cfg.history_layout == "raw_reshape":
            source = slot * GRID * GRID + position  # index into the (3, 10, 10) memory order
            slot, position = source % HISTORY, source // HISTORY
        y, x = position // GRID, position % GRID
        # Every (cell, slot, kernel offset) -> the output position it reaches; positions outside the 9 x 9 output
        # are dropped. Only the reached (step, position) pairs are summed; the rest are LeakyReLU(bias).
        targets, sources = [], []
        for k, (dy, dx) in enumerate(KERNEL_OFFSETS):
            oy, ox = y - dy, x - dx
            ok = (oy >= 0) & (oy < GRID - 1) & (ox >= 0) & (ox < GRID - 1)
            targets.append(step[ok] * (GRID - 1) ** 2 + oy[ok] * (GRID - 1) + ox[ok])
            sources.append((kind[row[ok]] * HISTORY + slot[ok]) * len(KERNEL_OFFSETS) + k)
        index, inverse = torch.unique(torch.cat(targets), return_inverse=True)
        summed = contributions.new_zeros(len(index), cfg.conv_channels).index_add(
            0, inverse, contributions.view(-1, cfg.conv_channels)[torch.cat(sources)])
        base = F.leaky_relu(self.conv.bias)
        return SparseFeatures(base, index, F.leaky_relu(summed + self.conv.bias) - base, n)

    def _dense_trunk(self, frames_e, frames_a, manual_of_frame, keys, values, frame_ids) -> torch.Tensor:
        """The plain definition: every cell of every frame, stacked history, Conv2d."""
        cfg = self.config
        frames, cells = frames_a.shape
        m = manual_of_frame[:, None].expand(frames, cells).reshape(-1)
        grid = self._cells(frames_e.reshape(frames * cells, -1), frames_a.reshape(-1), keys[m], values[m])
        grid = grid.view(frames, GRID, GRID, cfg.d_model)
        stacked = grid[frame_ids]  # [N, 3, 10, 10, d]
        if cfg.history_layout == "raw_reshape":
            x = stacked.reshape(-1, GRID, GRID, HISTORY * cfg.d_model)  # the original's reshape of memory
        else:
            x = stacked.permute(0, 2, 3, 1, 4).reshape(-1, GRID, GRID, HISTORY * cfg.d_model)
        out = F.leaky_relu(self.conv(x.permute(0, 3, 1, 2)))
        return out.permute(0, 2, 3, 1).flatten(1)  # position-major, as the sparse path
