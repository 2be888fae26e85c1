"""Small policies for tests of the loops (no dependence on the real networks)."""

import torch
from torch import nn

from lit_rlseq.nn.actor_critic import ActorCritic, PolicyOutput, mask_invalid


class TinyTextGridPolicy(ActorCritic):
    """Bag of words over the grid and the task -> logits and value. Small, fast, learnable."""

    def __init__(self, vocab_size: int, num_actions: int = 5, d: int = 16):
        super().__init__()
        self.num_actions = num_actions
        self.embed = nn.EmbeddingBag(vocab_size, d, mode="sum", padding_idx=0)
        self.body = nn.Sequential(nn.Linear(d * 2 + 36 * 2, 64), nn.ReLU())
        self.pi = nn.Linear(64, num_actions)
        self.v = nn.Linear(64, 1)

    def forward(self, obs, first, state=()):
        T, B = first.shape
        grid = obs["name"].reshape(T * B, -1)
        task = obs["task"].reshape(T * B, -1)
        pos = obs["rel_pos"].reshape(T * B, -1).float()
        h = self.body(torch.cat([self.embed(grid), self.embed(task), pos], -1))
        logits = mask_invalid(self.pi(h).reshape(T, B, -1), obs["valid"])
        return PolicyOutput(logits, self.v(h).reshape(T, B), ())


class CountingRecurrentPolicy(ActorCritic):
    """A recurrent 'network' whose state counts steps since the episode start: tests state resets."""

    num_actions = 5

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def initial_state(self, batch_size, device="cpu"):
        return (torch.zeros(batch_size, device=device),)

    def forward(self, obs, first, state=()):
        (count,) = state
        counts = []
        for t in range(first.shape[0]):
            count = torch.where(first[t], torch.zeros_like(count), count) + 1
            counts.append(count)
        counts = torch.stack(counts)
        logits = torch.zeros(*first.shape, self.num_actions) * self.scale
        return PolicyOutput(mask_invalid(logits, obs["valid"]), counts * self.scale, (count,))
