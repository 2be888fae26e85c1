"""The analyses: what the simulator is for. Each stage writes PNG/GIF files and a markdown section.

    python -m lit_rlseq.procgen_sim.analyses evaluate --simulator SIM.ckpt --store STORE --out DIR
    python -m lit_rlseq.procgen_sim.analyses hidden   --store STORE --out DIR
    python -m lit_rlseq.procgen_sim.analyses saliency --simulator SIM.ckpt --out DIR [--directions DIR/hidden.npz]
    python -m lit_rlseq.procgen_sim.analyses optimise --simulator SIM.ckpt --out DIR [--directions ...]

* evaluate: held-out frame error per simulated step (teacher forcing and free running) against two baselines
  (repeat the last real frame; the mean training frame), reward and done prediction, and how often the
  simulated agent picks the recorded action.
* hidden: PCA and FastICA (scikit-learn) of the agent's recorded hidden states; components over time and the
  frames at each independent component's extreme activations. Saves the directions for the next stages.
* saliency: gradients of the value, an action's logit and an hx direction at one simulated step with respect
  to the simulated frames and agent states before it, averaged over noised latents, overlaid on the frames.
* optimise: gradient steps on the latent through the differentiable simulator toward a target (value up or
  down, an action's logit margin, an hx direction up or down); the optimised rollouts as GIFs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from lit_rlseq.errors import DataError, MissingArtifactError, UserError  # noqa: E402
from lit_rlseq.procgen_sim.data import SimulatorDataModule  # noqa: E402
from lit_rlseq.procgen_sim.model import Rollout  # noqa: E402
from lit_rlseq.procgen_sim.module import SimulatorModule  # noqa: E402
from lit_rlseq.rollouts.store import RolloutStore  # noqa: E402
from lit_rlseq.rollouts.video import to_hwc, write_gif  # noqa: E402

SIM_COMMAND = "lightning fit --config configs/procgen_sim.yaml"
# Procgen's buttons (the same 15 in every game).
ACTION_NAMES = ("down-left", "left", "up-left", "down", "noop", "up", "down-right", "right", "up-right",
                "d", "a", "w", "s", "q", "e")


def load_simulator(path: str | Path) -> SimulatorModule:
    """A trained simulator (with its frozen agent) in eval mode, every weight frozen."""
    if not Path(path).is_file():
        raise MissingArtifactError("simulator checkpoint", str(path), produce_with=SIM_COMMAND)
    module = SimulatorModule.load_from_checkpoint(path, map_location="cpu")
    module.eval().requires_grad_(False)
    return module


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def _table(rows: list[tuple], header: tuple) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row) + " |")
    return "\n".join(lines)


# ---- evaluate ------------------------------------------------------------------------------------------------
def evaluate(module: SimulatorModule, store: str, out: Path, max_batches: int = 50, seed: int = 0) -> dict:
    """Held-out (validation-split) error of the simulator; writes sim_error.png and returns the figures."""
    c = module.config
    dm = SimulatorDataModule(store, batch_size=16, num_init=c.num_init, num_sim=c.num_sim, seed=seed)
    dm.setup("fit")
    if dm.val_dataset is None or len(dm.val_dataset) == 0:
        raise DataError(f"{store}: no held-out episodes to evaluate on; record more episodes")
    frames = dm.episodes.fields["obs/rgb"]
    train_rows = np.concatenate([np.arange(dm.episodes.state_offsets[i], dm.episodes.state_offsets[i + 1] - 1)
                                 for i in np.unique(dm.train_dataset.window_episode)])
    mean_frame = torch.from_numpy(frames[train_rows].mean(0) / 255.0).float()
    k, steps = c.num_init - 1, c.num_sim
    sums = {name: torch.zeros(steps) for name in ("teacher_forced", "free_running", "repeat_last_frame", "mean_frame")}
    count = torch.zeros(steps)
    agree = {"teacher_forced": [0.0, 0.0], "free_running": [0.0, 0.0]}
    reward_err, reward_base, done_pred, done_true = [], [], [], []
    mean_reward = float(dm.episodes.fields["reward"].mean())
    torch.manual_seed(seed)
    with torch.no_grad():
        for b, batch in enumerate(dm.val_dataloader()):
            if b >= max_batches:
                break
            real = batch["frames"][:, k : k + steps]
            mask = batch["mask"][:, k : k + steps].float()
            count += mask.sum(0)
            rollouts = {"teacher_forced": module.simulate_batch(batch, teacher_forcing=True, sample=False),
                        "free_running": module.simulate_batch(batch, teacher_forcing=False, sample=False)}
            predictions = {**{n: r.obs for n, r in rollouts.items()},
                           "repeat_last_frame": real[:, :1].expand_as(real), "mean_frame": mean_frame.expand_as(real)}
            for name, predicted in predictions.items():
                sums[name] += ((predicted - real).pow(2).mean((2, 3, 4)) * mask).sum(0)
            for name, rollout in rollouts.items():
                same = (rollout.logits.argmax(-1) == batch["action"][:, k : k + steps]).float()
                agree[name][0] += float((same * mask).sum())
                agree[name][1] += float(mask.sum())
            before = batch["mask"][:, k - 1 : k - 1 + steps]
            tf = rollouts["teacher_forced"]
            reward_err.append((tf.reward - batch["reward"][:, k - 1 : k - 1 + steps])[before])
            reward_base.append((mean_reward - batch["reward"][:, k - 1 : k - 1 + steps])[before])
            done_pred.append(tf.done[before])
            done_true.append(batch["done"][:, k - 1 : k - 1 + steps][before])
    per_step = {name: (value / count.clamp(min=1)).tolist() for name, value in sums.items()}
    overall = {name: float(value.sum() / count.sum()) for name, value in sums.items()}
    done_pred_t, done_true_t = torch.cat(done_pred), torch.cat(done_true)
    predicted_done = done_pred_t > 0.5
    results = {
        "frame_mse": overall,
        "frame_mse_per_step": per_step,
        "reward_mse": float(torch.cat(reward_err).pow(2).mean()),
        "reward_mse_mean_baseline": float(torch.cat(reward_base).pow(2).mean()),
        "done_accuracy": float((predicted_done == done_true_t.bool()).float().mean()),
        "done_recall": float(predicted_done[done_true_t.bool()].float().mean()) if done_true_t.any() else float("nan"),
        "done_steps": int(done_true_t.sum()),
        "action_agreement": {name: a / max(n, 1) for name, (a, n) in agree.items()},
        "sequences": int(count[0]),
    }
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, values in per_step.items():
        ax.plot(range(1, steps + 1), values, label=name.replace("_", " "))
    ax.set(xlabel="simulated step", ylabel="frame MSE (pixels in [0, 1])", title="held-out frame error")
    ax.legend()
    _save(fig, out / "sim_error.png")
    (out / "evaluate.json").write_text(json.dumps(results, indent=1))
    return results


def evaluate_report(results: dict) -> str:
    fm = results["frame_mse"]
    rows = [(name.replace("_", " "), value) for name, value in fm.items()]
    per = results["frame_mse_per_step"]
    return "\n".join([
        "## Simulator on held-out episodes",
        f"{results['sequences']} validation sequences. Frame MSE over all simulated steps:",
        "", _table(rows, ("prediction", "frame MSE")), "",
        f"Teacher-forced error at step 1 / middle / last: {per['teacher_forced'][0]:.4g} / "
        f"{per['teacher_forced'][len(per['teacher_forced']) // 2]:.4g} / {per['teacher_forced'][-1]:.4g}; "
        f"free running: {per['free_running'][0]:.4g} / {per['free_running'][len(per['free_running']) // 2]:.4g} / "
        f"{per['free_running'][-1]:.4g}.",
        "",
        f"Reward MSE {results['reward_mse']:.4g} (predicting the mean reward: "
        f"{results['reward_mse_mean_baseline']:.4g}). Done: accuracy {results['done_accuracy']:.3f}, recall "
        f"{results['done_recall']:.3f} on {results['done_steps']} episode ends.",
        f"Simulated agent picks the recorded action: teacher forced "
        f"{results['action_agreement']['teacher_forced']:.3f}, free running "
        f"{results['action_agreement']['free_running']:.3f}.",
        "", "![frame error per step](sim_error.png)", "",
    ])


# ---- hidden-state analysis -----------------------------------------------------------------------------------
def hidden(store: str, out: Path, components: int = 16, max_steps: int = 50_000, seed: int = 0) -> dict:
    """PCA and FastICA of the recorded hidden states; writes hidden_*.png and hidden.npz (the directions)."""
    from sklearn.decomposition import PCA, FastICA

    with RolloutStore(store) as s:
        if "hx" not in (s.schema or {}):
            raise DataError(f"{store} has no recorded hidden states (field 'hx'); record with "
                            "configs/procgen_collect.yaml (record_outputs: true)")
        refs, total = [], 0
        for ref in s.episodes():
            if total >= max_steps:
                break
            refs.append(ref)
            total += ref.length
        loaded = s.load_fields(refs, ["hx", "obs/rgb"])
    hx = loaded.fields["hx"].astype(np.float64)
    n = min(components, hx.shape[1], len(hx) - 1)
    if n < 2:
        raise DataError(f"{store}: {len(hx)} hidden states are too few for a component analysis")
    pca = PCA(n_components=n, random_state=seed).fit(hx)
    ica = FastICA(n_components=n, random_state=seed, max_iter=2000, whiten="unit-variance").fit(hx)
    sources = ica.transform(hx)
    np.savez(out / "hidden.npz", pca_components=pca.components_, pca_mean=pca.mean_,
             pca_explained=pca.explained_variance_ratio_, ica_mixing=ica.mixing_, ica_mean=ica.mean_)

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(range(1, n + 1), pca.explained_variance_ratio_, label="per component")
    ax.plot(range(1, n + 1), np.cumsum(pca.explained_variance_ratio_), "k.-", label="cumulative")
    ax.set(xlabel="principal component", ylabel="explained variance", title="PCA of the agent's hidden states")
    ax.legend()
    _save(fig, out / "hidden_pca_variance.png")

    episodes = min(3, len(refs))
    fig, axes = plt.subplots(2, episodes, figsize=(4 * episodes, 5), squeeze=False)
    projected = pca.transform(hx)
    for e in range(episodes):
        rows = slice(loaded.transition_offsets[e], loaded.transition_offsets[e + 1])
        for j in range(min(3, n)):
            axes[0, e].plot(projected[rows, j], label=f"PC{j + 1}")
        axes[0, e].set(title=f"episode {e}: principal components", xlabel="step")
        axes[0, e].legend(fontsize=7)
        axes[1, e].imshow(sources[rows].T, aspect="auto", cmap="coolwarm", interpolation="nearest")
        axes[1, e].set(title="independent components", xlabel="step", ylabel="IC")
    _save(fig, out / "hidden_components_over_time.png")

    shown, per_side = min(8, n), 4
    fig, axes = plt.subplots(shown, 2 * per_side, figsize=(2 * per_side * 1.1, shown * 1.2), squeeze=False)
    episode_of_row = np.searchsorted(loaded.transition_offsets, np.arange(len(hx)), side="right") - 1
    frame_rows = loaded.state_offsets[episode_of_row] + (np.arange(len(hx)) - loaded.transition_offsets[episode_of_row])
    frames = loaded.fields["obs/rgb"]
    for i in range(shown):
        order = np.argsort(sources[:, i])
        for j, row in enumerate([*order[:per_side], *order[::-1][:per_side]]):
            axes[i, j].imshow(to_hwc(frames[frame_rows[row]][None])[0])
            axes[i, j].axis("off")
        axes[i, 0].set_title(f"IC{i + 1} low", fontsize=7, loc="left")
        axes[i, per_side].set_title(f"IC{i + 1} high", fontsize=7, loc="left")
    _save(fig, out / "hidden_ica_extremes.png")
    return {"states": len(hx), "episodes": len(refs), "components": n,
            "pca_explained": pca.explained_variance_ratio_.tolist()}


def hidden_report(results: dict) -> str:
    cumulative = np.cumsum(results["pca_explained"])
    return "\n".join([
        "## The agent's hidden states",
        f"{results['states']} hidden states from {results['episodes']} recorded episodes. The first 3 principal "
        f"components explain {cumulative[min(2, len(cumulative) - 1)]:.1%} of the variance, "
        f"{results['components']} explain {cumulative[-1]:.1%}.",
        "", "![PCA](hidden_pca_variance.png)", "", "![components over time](hidden_components_over_time.png)", "",
        "Frames at the lowest and highest activations of each independent component:", "",
        "![IC extremes](hidden_ica_extremes.png)", "",
    ])


# ---- targets for saliency and optimisation ---------------------------------------------------------------------
def hx_direction(directions: str | Path | None, hidden_size: int) -> tuple[torch.Tensor, str]:
    """The first principal component of the hidden states (from ``hidden.npz``), else the first hx unit."""
    if directions is not None and Path(directions).is_file():
        pc = np.load(directions)["pca_components"][0]
        if pc.shape != (hidden_size,):
            raise DataError(f"{directions}: its directions have {pc.shape[0]} dimensions, the agent {hidden_size}")
        return torch.from_numpy(pc).float(), "PC1"
    unit = torch.zeros(hidden_size)
    unit[0] = 1.0
    return unit, "hx unit 0"


Target = Callable[[Rollout, int], torch.Tensor]  # rollout, step -> [B]


def targets(direction: torch.Tensor, action: int) -> dict[str, Target]:
    def margin(r: Rollout, s: int) -> torch.Tensor:
        others = torch.cat([r.logits[:, s, :action], r.logits[:, s, action + 1 :]], -1)
        return r.logits[:, s, action] - others.max(-1).values

    return {
        "value": lambda r, s: r.value[:, s],
        f"logit_{ACTION_NAMES[action]}": lambda r, s: r.logits[:, s, action],
        f"margin_{ACTION_NAMES[action]}": margin,
        "hx_direction": lambda r, s: r.hx[:, s] @ direction,
    }


def _overlay(frame: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """A frame [3, H, W] in [0, 1] with a heat map [H, W] in [0, 1] painted red over it."""
    rgb = frame.transpose(1, 2, 0) * 0.6
    rgb[..., 0] = np.clip(rgb[..., 0] + heat, 0, 1)
    return rgb


# ---- saliency ------------------------------------------------------------------------------------------------
def saliency(module: SimulatorModule, out: Path, directions: str | Path | None = None, samples: int = 8,
             noise: float = 0.1, step: int | None = None, window: int = 6, seed: int = 0) -> dict:
    """Saliency of three targets at ``step`` w.r.t. the frames and agent states before it; saliency.png/.gif."""
    c, agent = module.config, module.agent
    step = min(c.num_sim - 1, step if step is not None else c.num_sim // 2)
    direction, direction_name = hx_direction(directions, c.agent_hidden)
    action_probe = module.simulator.simulate(module.simulator.prior(1, generator=torch.Generator().manual_seed(seed)),
                                             agent)
    action = int(action_probe.logits[0, step].argmax())
    chosen = {k: v for k, v in targets(direction, action).items() if not k.startswith("margin")}
    z0 = module.simulator.prior(1, generator=torch.Generator().manual_seed(seed))
    generator = torch.Generator().manual_seed(seed + 1)
    maps: dict[str, np.ndarray] = {}
    hx_grads: dict[str, np.ndarray] = {}
    base_frames = action_probe.obs[0].numpy()
    for name, target in chosen.items():
        obs_grad = torch.zeros(step + 1, c.channels, c.image_size, c.image_size)
        hx_grad = torch.zeros(step + 1)
        for _ in range(samples):
            z = z0 + noise * torch.randn(z0.shape, generator=generator)
            kept: dict[tuple[int, str], torch.Tensor] = {}

            def hook(k: int, what: str, tensor: torch.Tensor) -> torch.Tensor:
                tensor = tensor.detach().requires_grad_(True) if k <= step else tensor
                kept[(k, what)] = tensor
                return tensor

            with torch.enable_grad():
                rollout = module.simulator.simulate(z, agent, steps=step + 1, hook=hook)
                inputs = [kept[(k, w)] for w in ("obs", "hx") for k in range(step + 1)]
                grads = torch.autograd.grad(target(rollout, step).sum(), inputs, allow_unused=True)
            for k in range(step + 1):
                g_obs, g_hx = grads[k], grads[step + 1 + k]
                if g_obs is not None:
                    obs_grad[k] += g_obs[0].abs()
                if g_hx is not None:
                    hx_grad[k] += g_hx[0].norm()
        maps[name] = (obs_grad.sum(1) / samples).numpy()
        hx_grads[name] = (hx_grad / samples).numpy()
    shown = list(range(max(0, step - window + 1), step + 1))
    fig, axes = plt.subplots(len(maps), len(shown), figsize=(1.6 * len(shown), 1.8 * len(maps)), squeeze=False)
    frames_gif = []
    for i, (name, heat) in enumerate(maps.items()):
        scale = heat[shown].max() or 1.0
        for j, k in enumerate(shown):
            axes[i, j].imshow(_overlay(base_frames[k], heat[k] / scale))
            axes[i, j].axis("off")
            axes[i, j].set_title(f"{name}\nstep {k}" if j == 0 else f"step {k}", fontsize=7)
    _save(fig, out / "saliency.png")
    for k in range(step + 1):
        row = [_overlay(base_frames[k], heat[k] / (heat.max() or 1.0)) for heat in maps.values()]
        frames_gif.append(np.concatenate(row, axis=1))
    write_gif(np.stack(frames_gif), out / "saliency.gif", fps=4)
    fig, ax = plt.subplots(figsize=(5, 3))
    for name, values in hx_grads.items():
        ax.plot(values / (values.max() or 1.0), label=name)
    ax.set(xlabel="simulated step", ylabel="|d target / d hx| (scaled)", title=f"hidden-state saliency (target step {step})")
    ax.legend(fontsize=7)
    _save(fig, out / "saliency_hx.png")
    return {"step": step, "action": ACTION_NAMES[action], "direction": direction_name, "targets": list(maps),
            "samples": samples, "noise": noise}


def saliency_report(results: dict) -> str:
    return "\n".join([
        "## Saliency",
        f"Gradients of {', '.join(results['targets'])} at simulated step {results['step']} (the action "
        f"'{results['action']}'; hx direction: {results['direction']}), averaged over {results['samples']} "
        f"latents noised with sigma {results['noise']}, painted red on the simulated frames (rows: targets):",
        "", "![saliency](saliency.png)", "", "![hx saliency](saliency_hx.png)", "",
        "Animated: [saliency.gif](saliency.gif)", "",
    ])


# ---- latent optimisation --------------------------------------------------------------------------------------
def optimise(module: SimulatorModule, out: Path, directions: str | Path | None = None, iterations: int = 60,
             samples: int = 2, seed: int = 0) -> dict:
    """Optimises latents toward each target (summed over all simulated steps); GIFs of before | after."""
    c, agent = module.config, module.agent
    direction, direction_name = hx_direction(directions, c.agent_hidden)
    # A target and its learning rate (the reference's: 1e-1 for value, 1 for neurons, 1e-2 otherwise).
    jump = ACTION_NAMES.index("up")
    all_targets = targets(direction, jump)
    plans = {"value_up": (all_targets["value"], 1.0, 0.1), "value_down": (all_targets["value"], -1.0, 0.1),
             f"margin_{ACTION_NAMES[jump]}": (all_targets[f"margin_{ACTION_NAMES[jump]}"], 1.0, 0.01),
             "hx_direction_up": (all_targets["hx_direction"], 1.0, 1.0),
             "hx_direction_down": (all_targets["hx_direction"], -1.0, 1.0)}
    results = {}
    curves = {}
    for name, (target, sign, lr) in plans.items():
        z_start = module.simulator.prior(samples, generator=torch.Generator().manual_seed(seed))
        z = z_start.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=lr)
        history = []
        for _ in range(iterations):
            with torch.enable_grad():
                rollout = module.simulator.simulate(z, agent)
                objective = torch.stack([target(rollout, s) for s in range(c.num_sim)], 1).mean()
                optimizer.zero_grad()
                (-sign * objective).backward()
            optimizer.step()
            history.append(float(objective.detach()))
        with torch.no_grad():
            before, after = module.simulator.simulate(z_start, agent), module.simulator.simulate(z.detach(), agent)
        final = float(torch.stack([target(after, s) for s in range(c.num_sim)], 1).mean())
        start = float(torch.stack([target(before, s) for s in range(c.num_sim)], 1).mean())
        frames = np.concatenate([before.obs.numpy(), after.obs.numpy()], axis=3)  # side by side
        video = np.concatenate(list(frames), axis=2)  # samples stacked vertically
        write_gif(video, out / f"optimise_{name}.gif", fps=6)
        results[name] = {"start": start, "end": final, "lr": lr}
        curves[name] = history
    fig, ax = plt.subplots(figsize=(5, 3))
    for name, history in curves.items():
        ax.plot(history, label=name)
    ax.set(xlabel="iteration", ylabel="target (mean over steps)", title="latent optimisation")
    ax.legend(fontsize=7)
    _save(fig, out / "optimise.png")
    return {"targets": results, "direction": direction_name, "iterations": iterations}


def optimise_report(results: dict) -> str:
    rows = [(name, r["start"], r["end"], r["lr"], f"[gif](optimise_{name}.gif)") for name, r in results["targets"].items()]
    return "\n".join([
        "## Optimising the latent toward a target",
        f"{results['iterations']} Adam steps on prior samples of the latent (hx direction: {results['direction']}). "
        "Each GIF shows the rollout before (left) and after (right) optimisation.",
        "", _table(rows, ("target", "before", "after", "lr", "rollouts")), "", "![optimisation](optimise.png)", "",
    ])


# ---- command line --------------------------------------------------------------------------------------------
STAGES = ("evaluate", "hidden", "saliency", "optimise")


def run_stage(stage: str, out: Path, store: str | None = None, simulator: str | None = None,
              directions: str | None = None, quick: bool = False) -> str:
    """Runs one analysis stage, writes ``<stage>.md`` in ``out`` and returns that markdown section."""
    out.mkdir(parents=True, exist_ok=True)
    if stage in ("evaluate", "hidden") and not store:
        raise UserError(f"the {stage} analysis needs --store (the recorded episodes)")
    if stage != "hidden" and not simulator:
        raise UserError(f"the {stage} analysis needs --simulator (a checkpoint from `{SIM_COMMAND}`)")
    if stage == "hidden":
        text = hidden_report(hidden(store, out))
    else:
        module = load_simulator(simulator)
        if stage == "evaluate":
            text = evaluate_report(evaluate(module, store, out, max_batches=2 if quick else 50))
        elif stage == "saliency":
            text = saliency_report(saliency(module, out, directions, samples=2 if quick else 8))
        elif stage == "optimise":
            text = optimise_report(optimise(module, out, directions, iterations=3 if quick else 60))
        else:
            raise UserError(f"unknown analysis {stage!r}; choose from {', '.join(STAGES)}")
    (out / f"{stage}.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lit_rlseq.procgen_sim.analyses", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--out", required=True, help="directory for the figures and the markdown section")
    parser.add_argument("--store", help="the recorded episodes (rollout store)")
    parser.add_argument("--simulator", help="the simulator checkpoint")
    parser.add_argument("--directions", help="hidden.npz from the hidden analysis (default: OUT/hidden.npz)")
    parser.add_argument("--quick", action="store_true", help="a few iterations only (for tests)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    directions = args.directions or str(out / "hidden.npz")
    try:
        print(run_stage(args.stage, out, args.store, args.simulator, directions, args.quick))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
