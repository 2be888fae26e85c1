"""The Trajectory Transformer as an agent: context bookkeeping around the planner, and its evaluator.

Per env the agent keeps the tokens of its last ``max_context_transitions`` executed transitions
``[obs | action | reward | value placeholder]`` (the value token is hidden from attention, so its id does not
matter; 0 is discretised like the reference does). Each step it plans for all running envs in one batch and
executes the first action of each plan, decoded to its bin midpoint.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from lit_rlseq.trajectory.discretize import decode, encode
from lit_rlseq.trajectory.evaluate import PolicyEvaluator
from lit_rlseq.trajectory.module import TrajectoryTransformer
from lit_rlseq.trajectory.planner import PlannerSettings, beam_plan, beam_plan_reference, planning_block


class PlanningAgent:
    def __init__(self, module: TrajectoryTransformer, settings: PlannerSettings, seed: int = 0,
                 cached: bool = True):
        self.model = module.model.eval()
        self.config = module.config
        self.thresholds = module.thresholds.detach().cpu().numpy()
        self.thresholds_t = module.thresholds.detach()
        self.settings = settings
        self.plan = beam_plan if cached else beam_plan_reference
        planning_block(self.model, settings)  # refuses a context longer than the model's block
        device = next(self.model.parameters()).device
        self.device = device
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.context: list[list[np.ndarray]] = []

    def reset(self, n_envs: int) -> None:
        self.context = [[] for _ in range(n_envs)]

    def prefixes(self, obs: np.ndarray, active: np.ndarray) -> torch.Tensor:
        c = self.config
        obs_tokens = encode(obs, self.thresholds[:, : c.observation_dim])
        rows = []
        for k, i in enumerate(np.flatnonzero(active)):
            rows.append(np.concatenate([*self.context[i], obs_tokens[k]]))
        lengths = {len(r) for r in rows}
        if len(lengths) != 1:
            raise RuntimeError(f"envs planned together must share a context length, got {sorted(lengths)}")
        return torch.as_tensor(np.stack(rows), dtype=torch.long, device=self.device)

    def act(self, obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        c = self.config
        plans = self.plan(self.model, self.prefixes(obs, active), self.thresholds_t, self.settings, self.generator)
        first_action = plans[:, 0, c.observation_dim : c.observation_dim + c.action_dim].cpu().numpy()
        # A sampled stop token (id n_bins) counts as the last bin, as in the reference's reconstruction.
        first_action = np.minimum(first_action, c.n_bins - 1)
        action_thresholds = self.thresholds[:, c.observation_dim : c.observation_dim + c.action_dim]
        return decode(first_action, action_thresholds).astype(np.float32)

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, active: np.ndarray) -> None:
        limit = self.settings.max_context_transitions or self.config.window
        for i in np.flatnonzero(active):
            transition = np.concatenate([obs[i], action[i], [reward[i], 0.0]])
            self.context[i].append(encode(transition, self.thresholds))
            del self.context[i][:-limit]


class TrajectoryPlannerEvaluator(PolicyEvaluator):
    """``lightning evaluate`` for a Trajectory Transformer checkpoint: beam-search planning in its env.

    The planner settings default to the reference's (``PlannerSettings``); ``cached: false`` plans with the
    uncached reference implementation (the same plans, much slower).
    """

    agent_name = "tt"

    def __init__(self, checkpoint: str, dataset: str | None = None, env: str | None = None,
                 results: str | None = None, progress: bool = True, horizon: int = 15, beam_width: int = 128,
                 n_expand: int = 2, discount: float = 0.99, max_context_transitions: int | None = 5,
                 k_obs: int | None = 1, k_act: int | None = None, k_rew: int | None = 1,
                 cdf_obs: float | None = None, cdf_act: float | None = 0.6, cdf_rew: float | None = None,
                 cached: bool = True, seed: int = 0):
        self.settings = PlannerSettings(horizon, beam_width, n_expand, discount, max_context_transitions, k_obs,
                                        k_act, k_rew, cdf_obs, cdf_act, cdf_rew)
        self.cached, self.seed = cached, seed
        super().__init__(checkpoint, dataset, env, results, progress)
        planning_block(self.tt.model, self.settings)
        self.check_observation_size(self.tt.config.observation_dim)
        self.rounds_done = 0

    def load(self, checkpoint: str) -> dict[str, Any]:
        self.tt = TrajectoryTransformer.load_from_checkpoint(checkpoint, map_location="cpu")
        return self.tt.dataset_spec

    def make_agent(self) -> PlanningAgent:
        self.rounds_done += 1
        return PlanningAgent(self.tt, self.settings, seed=self.seed + self.rounds_done, cached=self.cached)

    def summary(self, returns: np.ndarray) -> dict[str, Any]:
        return {**super().summary(returns), "planner": asdict(self.settings), "cached": self.cached}
