"""Train hptune's exported recipe with TRL alone (no hptune): the model, the TrainingArguments
and SFTConfig keys, the LoRA adapter and the chat template, as the run decided them.

    python examples/train_from_export.py EXPORT.json MODEL_DIR TRAIN.jsonl VALIDATION.jsonl OUT
"""

import json
import sys
from pathlib import Path

from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

recipe, model_dir, train, validation, out = sys.argv[1:6]
exported = json.loads(Path(recipe).read_text(encoding="utf-8"))
tokenizer = AutoTokenizer.from_pretrained(model_dir)
tokenizer.chat_template = exported["data"].get("chat_template", tokenizer.chat_template)
model = AutoModelForCausalLM.from_pretrained(model_dir, **exported["model_init"])
args = SFTConfig(output_dir=out, **exported["training_args"], **exported["sft_config"])
data = load_dataset("json", data_files={"train": train, "validation": validation})
trainer = SFTTrainer(model=model, args=args, train_dataset=data["train"],
                     eval_dataset=data["validation"], processing_class=tokenizer,
                     peft_config=LoraConfig(**exported["lora_config"]))  # fmt: skip
trainer.train()
print(json.dumps({"eval_loss": trainer.evaluate()["eval_loss"]}))
