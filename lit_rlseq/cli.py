"""The `lit-rlseq` / `lightning` command (also `python -m lit_rlseq`): LightningCLI plus two RL stages.

    lightning fit      --config configs/toy_impala.yaml
    lightning validate --config configs/toy_impala.yaml --ckpt_path runs/toy_impala/checkpoints/last.ckpt
    lightning evaluate --config configs/toy_impala.yaml --ckpt_path ...   (validate, then a table of results)
    lightning collect  --config configs/ldd_rtfm_collect.yaml             (record episodes into a store)
    lightning play     --config configs/ttm_cooking_teacher.yaml          (an agent plays text games -> store)
    lightning write_finetune --config configs/ttm_cooking_write_finetune.yaml   (store -> fine-tune JSONL)
    lightning import_ttyrecs --store runs/ldd_nethack/demos games/*.ttyrec3.bz2  (NetHack games -> store)

Any of our LightningModules and DataModules can be named with ``--model`` / ``--data`` (subclass mode).
Shapes that come from the data (vocabulary, number of actions) are linked into the model when both are
instantiated, so configs never repeat them. User errors (unknown keys, wrong types, missing files or
checkpoints) are printed as one message, without a traceback, and exit with status 2.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

import lightning as L
from jsonargparse import ArgumentError
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from lit_rlseq.errors import MissingArtifactError, UserError

# Data-derived shapes (and the TTM data's Hugging Face model directory) linked into the model (see
# LitRLSeqCLI.add_arguments_to_parser).
LINKED_FROM_DATA = ("vocab", "num_actions", "action_dim", "obs_dim", "dataset_spec", "tokenizer", "hf_model")
# Linked names of earlier versions, still found in the hyperparameters of their checkpoints.
RETIRED_LINKS = ("observation_dim",)

EXTRA_SUBCOMMANDS = {
    "collect": {"model", "dataloaders", "datamodule"},
    "evaluate": {"model", "dataloaders", "datamodule"},
    "play": {"model", "dataloaders", "datamodule"},
}
# Stages that are not Trainer runs: "name" -> "module:function" taking the argument list (own --config).
STANDALONE_STAGES = {
    "write_finetune": "lit_rlseq.ttm.write_finetune:main",
    "import_ttyrecs": "lit_rlseq.ldd.nethack_ttyrec:main",
}


class Trainer(L.Trainer):
    """Lightning's Trainer with the RL stages that are not training."""

    def collect(self, model: L.LightningModule | None = None, datamodule: L.LightningDataModule | None = None,
                ckpt_path: str | None = None) -> None:
        """Run a policy in environments and record its episodes into a rollout store (a predict run)."""
        from lit_rlseq.loops.collect import CollectDataModule

        self._record("collect", CollectDataModule, "lit_rlseq.loops.CollectDataModule (where to record what)",
                     "configs/ldd_rtfm_collect.yaml", model, datamodule, ckpt_path)

    def play(self, model: L.LightningModule | None = None, datamodule: L.LightningDataModule | None = None,
             ckpt_path: str | None = None) -> None:
        """An agent plays text games and every trajectory is written into a rollout store (a predict run)."""
        from lit_rlseq.ttm.play import PlayDataModule

        self._record("play", PlayDataModule, "lit_rlseq.ttm.play.PlayDataModule (which games, where to record)",
                     "configs/ttm_cooking_teacher.yaml", model, datamodule, ckpt_path)

    def _record(self, stage: str, data_class: type, data_text: str, example: str, model: L.LightningModule | None,
                datamodule: L.LightningDataModule | None, ckpt_path: str | None) -> None:
        if not isinstance(datamodule, data_class):
            raise UserError(f"`{stage}` needs data of class {data_text}, got {type(datamodule).__name__}; see {example}")
        self.predict(model, datamodule=datamodule, ckpt_path=ckpt_path, return_predictions=False)

    def evaluate(self, model: L.LightningModule | None = None, datamodule: L.LightningDataModule | None = None,
                 ckpt_path: str | None = None) -> list[dict[str, float]]:
        """Evaluate a policy in the data's evaluation environments (a validate run) and print a table."""
        results = self.validate(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
        if self.is_global_zero:
            for name, value in sorted(results[0].items() if results else []):
                print(f"{name:40s} {value:10.4f}")
        return results


class SaveFitConfig(SaveConfigCallback):
    """Saves the run's config next to its logs for training runs only (collect/evaluate leave no files)."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            super().setup(trainer, pl_module, stage)


class LitRLSeqCLI(LightningCLI):
    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {**LightningCLI.subcommands(), **EXTRA_SUBCOMMANDS}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Data-derived shapes. A model that does not take the argument is left alone; a data module that does
        # not provide it gives None, and the model says what it needs.
        for name in LINKED_FROM_DATA:
            parser.link_arguments(
                "data", f"model.init_args.{name}", compute_fn=_attribute(name), apply_on="instantiate"
            )

    def before_instantiate_classes(self) -> None:
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and ckpt_path not in ("last", "best", "hpc") and not Path(ckpt_path).is_file():
            raise MissingArtifactError(
                "checkpoint (--ckpt_path)", ckpt_path, produce_with="lightning fit --config <the run's config>"
            )
        if ckpt_path:
            self._drop_foreign_links(self.config[subcommand].get("model"))

    def after_instantiate_classes(self) -> None:
        # The links hand every data-derived shape to every model; those it does not take would be saved into
        # its checkpoint's hyperparameters as None and break `Model.load_from_checkpoint(path)`.
        hparams = getattr(self.model, "hparams", None)
        if hparams is None:
            return
        for name in LINKED_FROM_DATA:
            if name in hparams and not _takes_argument(type(self.model), name):
                del hparams[name]

    @staticmethod
    def _drop_foreign_links(model: Any) -> None:
        """Checkpoints written before `after_instantiate_classes` cleaned them hold every linked shape, also those
        their model does not take (as None); Lightning passes them all back on resume. Keep only those it takes."""
        dict_kwargs = model.get("dict_kwargs") if model is not None else None
        if not dict_kwargs or not model.get("class_path"):
            return
        module_name, _, class_name = model["class_path"].rpartition(".")
        model_class = getattr(importlib.import_module(module_name), class_name)
        for name in (*LINKED_FROM_DATA, *RETIRED_LINKS):
            if name in dict_kwargs and not _takes_argument(model_class, name):
                del dict_kwargs[name]


def _takes_argument(model_class: type, name: str) -> bool:
    """Whether ``name`` is a named parameter of the __init__ of ``model_class`` or of a base class below
    LightningModule (where **kwargs are forwarded to)."""
    for cls in model_class.__mro__:
        if cls is L.LightningModule:
            break
        init = cls.__dict__.get("__init__")
        if init is not None and name in inspect.signature(init).parameters:
            return True
    return False


def _attribute(name: str):
    def get(datamodule: Any) -> Any:
        return getattr(datamodule, name, None)

    return get


def _parser_kwargs() -> dict[str, Any]:
    common = {"parser_mode": "omegaconf", "exit_on_error": False}
    return {**common, **{name: dict(common) for name in {**LightningCLI.subcommands(), **EXTRA_SUBCOMMANDS}}}


def _clean_argument_error(message: str) -> str:
    """jsonargparse explains a bad subclass argument through every Union branch; keep the informative lines."""
    lines = [line.rstrip() for line in message.splitlines() if line.strip()]
    useful = [
        line for line in lines
        if not any(noise in line for noise in ("Does not validate against any of the Union", "Subtypes:",
                                                "Errors:", "Expected a <class 'NoneType'>", "Given value type:",
                                                "Given value: NestedArg"))
    ]
    return "\n".join(useful)


def run_cli(args: list[str] | None = None) -> LitRLSeqCLI | None:
    """Parses ``args`` (default: sys.argv), runs the subcommand and returns the CLI (tests inspect it); a
    standalone stage (``STANDALONE_STAGES``) runs its own parser and returns None."""
    argv = sys.argv[1:] if args is None else args
    if argv and argv[0] in STANDALONE_STAGES:
        module_name, fn_name = STANDALONE_STAGES[argv[0]].split(":")
        try:
            getattr(importlib.import_module(module_name), fn_name)(argv[1:])
        except ArgumentError as e:
            _fail(f"{argv[0]}: {e}\n  (run with --help for the accepted options)")
        except UserError as e:
            _fail(str(e))
        return None
    try:
        return LitRLSeqCLI(
            L.LightningModule,
            L.LightningDataModule,
            trainer_class=Trainer,
            subclass_mode_model=True,
            subclass_mode_data=True,
            parser_kwargs=_parser_kwargs(),
            save_config_callback=SaveFitConfig,
            save_config_kwargs={"overwrite": True},
            args=args,
        )
    except ArgumentError as e:
        _fail(_clean_argument_error(str(e)) + "\n  (run with --help for the accepted options)")
    except (UserError, FileNotFoundError) as e:
        _fail(str(e))
    except ValueError as e:
        # jsonargparse re-raises errors from our constructors (e.g. an unknown env id) inside its own.
        cause = _user_error_in_chain(e)
        if cause is None:
            raise
        _fail(str(cause))


def _user_error_in_chain(error: BaseException) -> UserError | None:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, UserError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def main(args: list[str] | None = None) -> None:
    """The console script (`lit-rlseq`, `lightning`)."""
    # Lightning 2.6 calls a torch pytree API that torch 2.13 deprecates, on every run; nothing to act on.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    run_cli(args)


def _fail(message: str) -> NoReturn:
    print(f"lit-rlseq: error: {message}", file=sys.stderr)
    raise SystemExit(2)
