"""The ``sft`` backend: each seed of each trial is a TRL ``SFTTrainer``, given the raw
records in TRL's shape (``hptune.train.trl_data``) or hptune's own tokens, and trained as the
``trainer`` backend trains its Trainer (the same callback, checks and checkpoints).
"""

from __future__ import annotations

from typing import Any

from hptune._lazy import datasets_logging, trl
from hptune.config._backends import SFT
from hptune.train.arguments import sft_arguments
from hptune.train.trainer import TrainerRunner
from hptune.train.trl_data import sft_dataset, sft_tokenizer
from hptune.train.user import TrialRun

__all__ = ["SFTRunner"]


class SFTRunner(TrainerRunner):
    """Trains each run with TRL's ``SFTTrainer`` (``training.backend: sft``).

    Args:
        config: The run's configuration.
        trainer_factory: Builds the user's ``Trainer`` instead (see `TrainerRunner`).

    Raises:
        DataError: A data file is missing, empty or malformed.
        ModelError: The model or its tokenizer cannot be loaded.
        UnsupportedError: The method cannot run on this machine.
    """

    declared = SFT

    def build_trainer(self, run: TrialRun) -> Any:
        """The SFTTrainer of one run, from its configuration.

        Args:
            run: The trial's hyperparameters and seed.

        Returns:
            An ``SFTTrainer`` on the raw training records (TRL's tokenization) or hptune's
            tokens, not yet trained.
        """
        model = run.model()
        keys = {
            **run.training_keys(),
            **sft_arguments(self.config, self.data.format),
            **dict(run.hparams.args),  # a phase's searched values win
        }
        records = self.data.train_records
        if records is None:
            # hptune's own tokenization: the tokens it trains on (its labels, every
            # assistant turn of a conversation too) go in as completions.
            keys.update(completion_only_loss=True, assistant_only_loss=False)
        args = trl.SFTConfig(**keys)
        datasets_logging.disable_progress_bar()  # its preprocessing, once per run
        try:
            return trl.SFTTrainer(
                model=model,
                args=args,
                train_dataset=sft_dataset(self.data.train, records),
                processing_class=sft_tokenizer(self.tokenizer, self.data.trl_chat_template),
                optimizers=self.optimizers(model, run),
            )
        finally:
            datasets_logging.enable_progress_bar()
