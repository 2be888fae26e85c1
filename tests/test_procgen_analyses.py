"""Each analysis stage writes its figures and markdown on a tiny simulator (files checked, not pictures)."""

import imageio.v2 as imageio
import lightning as L
import numpy as np
import pytest

from lit_rlseq.errors import MissingArtifactError, UserError
from lit_rlseq.procgen_sim.analyses import main, run_stage
from lit_rlseq.procgen_sim.data import SimulatorDataModule
from lit_rlseq.procgen_sim.module import SimulatorModule

TINY = dict(agent_hidden=16, agent_channels=(4, 8, 8), latent=8, encoder_channels=(4, 4, 4, 4), encoder_lstm=16,
            mlp_hidden=16, env_hidden=16, decoder_channels=4, num_init=3, num_sim=6)


@pytest.fixture(scope="module")
def simulator_ckpt(procgen_store, procgen_agent_ckpt, tmp_path_factory):
    module = SimulatorModule(str(procgen_agent_ckpt), **TINY)
    dm = SimulatorDataModule(str(procgen_store), batch_size=2, num_init=3, num_sim=6, stride=4, val_fraction=0.25)
    trainer = L.Trainer(max_steps=2, limit_val_batches=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=dm)
    path = tmp_path_factory.mktemp("sim") / "sim.ckpt"
    trainer.save_checkpoint(path)
    return path


def images_ok(*paths):
    for path in paths:
        image = np.asarray(imageio.imread(path))
        assert image.ndim == 3 and image.std() > 0, path


@pytest.mark.slow
def test_every_stage_writes_its_files(tmp_path, procgen_store, simulator_ckpt):
    out = tmp_path / "analyses"
    text = run_stage("hidden", out, store=str(procgen_store))
    assert "hidden states" in text and (out / "hidden.npz").is_file()
    images_ok(out / "hidden_pca_variance.png", out / "hidden_components_over_time.png", out / "hidden_ica_extremes.png")
    np.testing.assert_equal(np.load(out / "hidden.npz")["pca_components"].shape[1], 16)

    text = run_stage("evaluate", out, store=str(procgen_store), simulator=str(simulator_ckpt), quick=True)
    assert "repeat last frame" in text and (out / "evaluate.json").is_file()
    images_ok(out / "sim_error.png")

    text = run_stage("saliency", out, simulator=str(simulator_ckpt), directions=str(out / "hidden.npz"), quick=True)
    assert "PC1" in text
    images_ok(out / "saliency.png", out / "saliency_hx.png")
    assert len(imageio.mimread(out / "saliency.gif")) == 4  # steps 0..3 (the middle of 6)

    text = run_stage("optimise", out, simulator=str(simulator_ckpt), directions=str(out / "hidden.npz"), quick=True)
    assert "value_up" in text and "hx_direction_down" in text
    images_ok(out / "optimise.png")
    assert len(imageio.mimread(out / "optimise_value_up.gif")) == 6
    assert {p.name for p in out.glob("*.md")} == {"hidden.md", "evaluate.md", "saliency.md", "optimise.md"}


def test_missing_inputs_are_clear_errors(tmp_path, capsys):
    with pytest.raises(MissingArtifactError, match="configs/procgen_sim.yaml"):
        run_stage("saliency", tmp_path, simulator=str(tmp_path / "none.ckpt"))
    with pytest.raises(UserError, match="--store"):
        run_stage("hidden", tmp_path)
    assert main(["optimise", "--out", str(tmp_path)]) == 2
    assert "--simulator" in capsys.readouterr().err
