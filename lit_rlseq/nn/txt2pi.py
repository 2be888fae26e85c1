"""txt2pi: the RTFM paper's FiLM² text-grid network (Zhong et al., ICLR 2020), as used by LDD.

The encoder reads a text-grid observation (see ``lit_rlseq.envs`` for the keys and shapes) and produces the
last FiLM feature map and a ``d_rep`` representation; the policy adds a policy head and a value head. The
dynamics model of LDD reuses the same encoder, so ``policy.encoder.load_state_dict(dynamics.encoder.
state_dict())`` initialises every shared weight.

Choices where the reference is silent:
* wiki, task and inventory each get their own BiLSTM (the word embedding is shared with the grid cells); a
  cell is the mean embedding of its name's words, summed over the cell's placements;
* the task and the inventory are pooled by self-attention with a learned linear score;
* FiLM layer i queries the wiki with Linear(max-pool over space of its input image); the first layer has no
  grid summary yet and queries with Linear(task summary): the task is the only observation-dependent
  summary available, a learned constant query would read the same words of every wiki;
* the last layer's "previous summary" is the max-pool of its actual input (the residual sum);
* attention is scaled dot-product with the wiki BiLSTM states as keys and values;
* the representation is relu(Linear(max-pool over space of the last FiLM map)), as in IMPALA's networks. A
  tanh there saturated in training: the max-pooled FiLM features grow, and one of three toy runs ended with
  every |rep| > 0.99 and the same rep for every observation, so no gradient reached the encoder again;
* the conv of the text-modulates-image branch and the conv giving the image-modulates-text γ', β' read the
  same input, so they are one Conv2d with 3·C outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from lit_rlseq.errors import DataError, UserError
from lit_rlseq.nn.actor_critic import ActorCritic, PolicyOutput, State, mask_invalid
from lit_rlseq.nn.text import (
    AttentionPool,
    BiLSTMEncoder,
    EncodedText,
    attend,
    group_rows,
    length_mask,
    unique_rows,
)

TEXT_FIELDS = ("wiki", "task", "inv")


@dataclass
class Txt2PiConfig:
    vocab_size: int
    num_actions: int = 5
    d_word: int = 100  # word embedding size
    d_text: int = 200  # BiLSTM output size (d_text / 2 per direction)
    channels: tuple[int, ...] = (16, 32, 64, 64, 64)  # FiLM layer widths; the last takes out[-3] + out[-2]
    d_rep: int = 400  # size of the representation the heads (and LDD's distillation) read
    # Encode each distinct wiki / task / inventory row of a batch once. Exactly equivalent to encoding every
    # row (the switch exists to check that); much faster on learner batches, where rows of one episode repeat.
    dedupe_text: bool = True

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        for key in ("vocab_size", "num_actions", "d_word", "d_text", "d_rep"):
            if getattr(self, key) < 1:
                raise UserError(f"Txt2PiConfig.{key}={getattr(self, key)} must be a positive integer")
        if self.d_text % 2:
            raise UserError(
                f"Txt2PiConfig.d_text={self.d_text} must be even: the BiLSTM gives d_text / 2 per direction"
            )
        if len(self.channels) < 3 or self.channels[-3] != self.channels[-2]:
            raise UserError(
                f"Txt2PiConfig.channels={self.channels}: need at least 3 FiLM layers, and the last layer's input "
                f"is the sum of the two outputs before it, so channels[-3] must equal channels[-2] "
                f"(paper: 16, 32, 64, 64, 64)"
            )


class EncoderOutput(NamedTuple):
    film_map: torch.Tensor  # [..., C_last, H, W]: the last FiLM layer's output
    rep: torch.Tensor  # [..., d_rep]


class DoubleFiLM(nn.Module):
    """One FiLM² layer: text modulates the image conv, the image modulates the projected text; summed.

    x [N, in_channels, H, W], text [N, d_text_in] -> [N, out_channels, H, W].
    """

    def __init__(self, in_channels: int, out_channels: int, d_text_in: int):
        super().__init__()
        # One conv gives the image features and the image-derived γ', β' (all three read the same input).
        self.conv = nn.Conv2d(in_channels, 3 * out_channels, kernel_size=3, padding=1)
        self.text_film = nn.Linear(d_text_in, 2 * out_channels)  # γ, β for the image branch
        self.text_proj = nn.Linear(d_text_in, out_channels)  # the text features the image modulates

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        features, gamma_img, beta_img = self.conv(x).chunk(3, dim=1)
        gamma_txt, beta_txt = self.text_film(text)[:, :, None, None].chunk(2, dim=1)
        text_features = self.text_proj(text)[:, :, None, None]
        text_modulates_image = F.relu((1 + gamma_txt) * features + beta_txt)
        image_modulates_text = F.relu((1 + gamma_img) * text_features + beta_img)
        return text_modulates_image + image_modulates_text


class Txt2PiEncoder(nn.Module):
    """Text-grid observation (one leading batch dim [N, ...]) -> EncoderOutput(film_map, rep)."""

    def __init__(self, config: Txt2PiConfig):
        super().__init__()
        self.config = config
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.d_word, padding_idx=0)
        self.wiki_lstm = BiLSTMEncoder(c.d_word, c.d_text)
        self.task_lstm = BiLSTMEncoder(c.d_word, c.d_text)
        self.inv_lstm = BiLSTMEncoder(c.d_word, c.d_text)
        self.task_pool = AttentionPool(c.d_text)
        self.inv_pool = AttentionPool(c.d_text)
        self.task_query = nn.Linear(c.d_text, c.d_text)  # task summary -> query over the wiki
        in_channels = (c.d_word,) + c.channels[:-1]
        # Layer 0 queries the wiki from the task summary, later layers from the max-pool of their input.
        query_sources = (c.d_text,) + c.channels[:-1]
        self.wiki_queries = nn.ModuleList(nn.Linear(d, c.d_text) for d in query_sources)
        self.films = nn.ModuleList(
            DoubleFiLM(cin + 2, cout, 3 * c.d_text) for cin, cout in zip(in_channels, c.channels)
        )
        self.fc = nn.Linear(c.channels[-1], c.d_rep)

    def forward(self, obs: dict[str, torch.Tensor]) -> EncoderOutput:
        check_text_grid_obs(obs, self.config.vocab_size)
        cells = self.encode_cells(obs["name"], obs["name_len"])
        rel_pos = obs["rel_pos"].permute(0, 3, 1, 2).to(cells.dtype)
        wiki = self.encode_text(obs["wiki"], obs["wiki_len"], self.wiki_lstm)
        task_summary = self.task_pool(self.encode_text(obs["task"], obs["task_len"], self.task_lstm))
        inv_summary = self.inv_pool(self.encode_text(obs["inv"], obs["inv_len"], self.inv_lstm))
        wiki_by_task = attend(wiki, self.task_query(task_summary))

        outputs: list[torch.Tensor] = []
        x = cells
        for i, (film, to_query) in enumerate(zip(self.films, self.wiki_queries)):
            if i == len(self.films) - 1:
                x = outputs[-2] + outputs[-1]  # residual: the last layer reads the sum of the two before it
            query_source = task_summary if i == 0 else x.amax(dim=(2, 3))
            wiki_by_grid = attend(wiki, to_query(query_source))
            text = torch.cat([wiki_by_grid, inv_summary, wiki_by_task], dim=-1)
            x = film(torch.cat([x, rel_pos], dim=1), text)
            outputs.append(x)
        rep = F.relu(self.fc(x.amax(dim=(2, 3))))
        return EncoderOutput(film_map=x, rep=rep)

    def encode_cells(self, name: torch.Tensor, name_len: torch.Tensor) -> torch.Tensor:
        """name [N, H, W, P, Nw], name_len [N, H, W, P] -> [N, d_word, H, W].

        Each placement is the mean embedding of its name's words (zero for an empty placement); the
        placements of a cell are summed.
        """
        n, h, w, p, nw = name.shape
        flat_len = name_len.reshape(-1)
        weights = length_mask(flat_len, nw) / flat_len.clamp(min=1).unsqueeze(-1)
        # embedding_bag sums weighted embeddings without materialising [N, H, W, P, Nw, d_word].
        placements = F.embedding_bag(
            name.reshape(-1, nw),
            self.embedding.weight,
            mode="sum",
            per_sample_weights=weights.to(self.embedding.weight.dtype),
            padding_idx=self.embedding.padding_idx,
        )
        return placements.view(n, h, w, p, -1).sum(dim=3).permute(0, 3, 1, 2)

    def encode_text(self, ids: torch.Tensor, lengths: torch.Tensor, lstm: BiLSTMEncoder) -> EncodedText:
        """ids [N, L], lengths [N] -> the BiLSTM states of each distinct row (every row without dedupe)."""
        if self.config.dedupe_text:
            ids, lengths, inverse = unique_rows(ids, lengths)
        else:
            inverse = torch.arange(len(ids), device=ids.device)
        states = lstm(self.embedding(ids), lengths)
        return EncodedText(states, lengths, group_rows(inverse, len(ids)))


class Txt2PiPolicy(ActorCritic):
    """txt2pi encoder + policy and value heads over its representation. Feedforward: the state is ()."""

    def __init__(self, config: Txt2PiConfig):
        super().__init__()
        self.config = config
        self.num_actions = config.num_actions
        self.encoder = Txt2PiEncoder(config)
        self.policy_head = nn.Linear(config.d_rep, config.num_actions)
        self.value_head = nn.Linear(config.d_rep, 1)

    def forward(self, obs: dict[str, torch.Tensor], first: torch.Tensor, state: State = ()) -> PolicyOutput:
        return self.forward_with_rep(obs, first, state)[0]

    def forward_with_rep(
        self, obs: dict[str, torch.Tensor], first: torch.Tensor, state: State = ()
    ) -> tuple[PolicyOutput, EncoderOutput]:
        """One pass giving the policy output and the encoder output it came from, both [T, B, ...]."""
        if state != ():
            raise UserError(f"Txt2PiPolicy is feedforward: pass state=() (got a tuple of {len(state)} tensors)")
        if "valid" not in obs:
            raise DataError("observation has no 'valid' key: Txt2PiPolicy needs the legal-action mask bool [T, B, A]")
        t, b = first.shape
        valid = obs["valid"]
        if valid.shape != (t, b, self.num_actions):
            raise DataError(
                f"obs['valid'] has shape {tuple(valid.shape)}, expected {(t, b, self.num_actions)} [T, B, num_actions]"
            )
        encoded = self.representation(obs)
        logits = mask_invalid(self.policy_head(encoded.rep), valid)
        value = self.value_head(encoded.rep).squeeze(-1)
        return PolicyOutput(logits=logits, value=value, state=()), encoded

    def representation(self, obs: dict[str, torch.Tensor]) -> EncoderOutput:
        """The encoder output for observations shaped [T, B, ...], reshaped back to [T, B, ...]."""
        t, b = next(iter(obs.values())).shape[:2]
        encoded = self.encoder({key: value.flatten(0, 1) for key, value in obs.items()})
        return EncoderOutput(*(x.unflatten(0, (t, b)) for x in encoded))


# Keys the encoder reads, with their number of dims after the batch dim N.
OBS_DIMS = {
    "name": 4, "name_len": 3, "rel_pos": 3,
    "wiki": 1, "wiki_len": 0, "task": 1, "task_len": 0, "inv": 1, "inv_len": 0,
}


def check_text_grid_obs(obs: dict[str, torch.Tensor], vocab_size: int) -> None:
    """Raises DataError naming the key when a batched text-grid observation [N, ...] is malformed."""
    missing = [key for key in OBS_DIMS if key not in obs]
    if missing:
        raise DataError(
            f"text-grid observation lacks keys {missing} (has {sorted(obs)}); see lit_rlseq.envs for the layout"
        )
    n = obs["name"].shape[0]
    for key, dims in OBS_DIMS.items():
        shape = tuple(obs[key].shape)
        if len(shape) != dims + 1 or shape[0] != n:
            raise DataError(f"obs[{key!r}] has shape {shape}, expected {dims} dims after the batch size {n}")
    grid = obs["name"].shape[1:4]
    if obs["name_len"].shape[1:] != grid or obs["rel_pos"].shape[1:] != grid[:2] + (2,):
        raise DataError(
            f"grid shapes disagree: name {tuple(obs['name'].shape)}, name_len {tuple(obs['name_len'].shape)}, "
            f"rel_pos {tuple(obs['rel_pos'].shape)} (expected [N, H, W, P, Nw], [N, H, W, P], [N, H, W, 2])"
        )
    for key, min_len in (("name", 0), *((field, 1) for field in TEXT_FIELDS)):
        ids, lengths = obs[key], obs[f"{key}_len"]
        if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
            raise DataError(
                f"obs[{key!r}] holds word ids in [{int(ids.min())}, {int(ids.max())}] but vocab_size={vocab_size}: "
                f"build the network with the environment's vocabulary size"
            )
        if lengths.numel() and (lengths.min() < min_len or lengths.max() > ids.shape[-1]):
            raise DataError(
                f"obs['{key}_len'] holds lengths in [{int(lengths.min())}, {int(lengths.max())}], "
                f"expected [{min_len}, {ids.shape[-1]}] (the padded length of obs[{key!r}])"
            )
