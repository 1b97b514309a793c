"""The run patches the benchmark applies to the authors' SLMRec code (WujiangXu/SLMRec at 0555b8d).

Each patch replaces a short fragment of one file by another, and says why. A fragment must occur
exactly as often as the patch expects, so a tree at another commit fails loudly, naming the patch,
instead of being half patched. No patch changes what their training computes: they make the code
load a local backbone and run on current Python and peft, take a seed, and (for the CPU check) run
without a GPU. The list is the benchmark's patch list; README.md sets it out as a table.

    python benchmarks/authors_code/patches.py SOURCE_DIR WORK_DIR   # copy SOURCE_DIR, patch the copy
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

PINNED_COMMIT = "0555b8d"  # WujiangXu/SLMRec, 2024-10-14
SEED_ENV = "AUTHORS_SEED"  # the seed of one run (their scripts have no seed flag)


@dataclass(frozen=True)
class Patch:
    name: str  # short id, used in errors and in README.md
    path: str  # file inside their tree
    old: str  # fragment to replace
    new: str  # replacement
    count: int  # how many times `old` must occur (all are replaced)
    reason: str  # why the run needs it


_CUDA_TO_DEVICE = [  # tensors their model moves with .cuda(); `inputs` is on the model's device
    "self.instruct_ids", "self.response_ids", "self.instruct_mask", "self.response_mask",
    "torch.ones_like(pos_logits)", "torch.zeros_like(neg_logits)",
]
_CUDA_COUNTS = {"self.instruct_ids": 3, "self.response_ids": 3, "self.instruct_mask": 2, "self.response_mask": 2,
                "torch.ones_like(pos_logits)": 4, "torch.zeros_like(neg_logits)": 4}

PATCHES: tuple[Patch, ...] = (
    Patch("peft-alias", "model.py",
          "    prepare_model_for_int8_training,\n",
          "    prepare_model_for_kbit_training as prepare_model_for_int8_training,\n", 1,
          "peft >= 0.12 no longer has prepare_model_for_int8_training; prepare_model_for_kbit_training is its "
          "successor (on an unquantised model it freezes the base weights and casts them to fp32)."),
    Patch("backbone-from-base-model", "model.py",
          "        self.llama_model = LlamaModel.from_pretrained(\"meta-llama/Llama-2-7b-hf\", load_in_8bit=True, "
          "torch_dtype=torch.float16,\n                                              cache_dir=args['cache_dir'], "
          "device_map=self.args['device_map'])\n\n        # self.llama_model = LlamaModel.from_pretrained(self.args",
          "        self.llama_model = LlamaModel.from_pretrained(self.args['base_model'], torch_dtype=torch.float32,\n"
          "                                              device_map=self.args['device_map'])\n\n"
          "        # self.llama_model = LlamaModel.from_pretrained(self.args", 1,
          "the backbone is hard-coded to the hub id with 8-bit weights and --base_model is ignored; the "
          "benchmark's backbone is a local folder and there is no network or bitsandbytes. fp32 is what "
          "prepare_model_for_kbit_training casts an unquantised fp16 load to anyway."),
    Patch("tokenizer-load", "model.py",
          "        self.llama_model = LlamaModel.from_pretrained(\"meta-llama/Llama-2-7b-hf\", load_in_8bit=True, "
          "torch_dtype=torch.float16,\n                                              cache_dir=args['cache_dir'], "
          "device_map=self.args['device_map'])\n        # self.llama_tokenizer",
          "        self.llama_tokenizer = transformers.AutoTokenizer.from_pretrained(self.args['base_model'])\n"
          "        # self.llama_tokenizer", 1,
          "commit aa0fbef replaced the tokenizer load by a second model load: self.llama_tokenizer is then "
          "undefined (and the LoRA-wrapped model would be thrown away). Load the backbone folder's tokenizer."),
    Patch("pad-token", "model.py",
          "        self.llama_tokenizer.pad_token = 0\n",
          "        self.llama_tokenizer.pad_token_id = 0\n", 1,
          "transformers refuses a non-string pad_token; the id says what the line means. Prompts are "
          "tokenised without padding, so it changes no input."),
    *(Patch(f"device-{frag.replace('self.', '').replace('torch.', '').split('(')[0]}", "model.py",
            f"{frag}.cuda()", f"{frag}.to(inputs.device)", _CUDA_COUNTS[frag],
            "so the CPU check runs without a GPU; on a GPU `inputs` is already on it, so nothing changes.")
      for frag in _CUDA_TO_DEVICE),
    Patch("random-sample-list", "utils/data_utils.py",
          "random.sample(neg_items_set,", "random.sample(list(neg_items_set),", 6,
          "Python >= 3.11 refuses random.sample on a set (their 999 negatives per example)."),
    Patch("no-spacy", "utils/data_utils.py", "import spacy\n", "", 1,
          "spaCy is imported at module level but unused by the sequential task; it is not installed."),
    Patch("no-sklearn", "utils/eval_utils.py", "from sklearn.metrics import roc_auc_score\n", "", 1,
          "scikit-learn is imported for an AUC function the task never calls; it is not installed."),
    Patch("distill-imports", "distill.py",
          "from model import LLM4Rec,LLM4RecText,LLM4RecDistill,LLM4RecTeacher,LLM4RecStudent\n",
          "from model import LLM4Rec,LLM4RecDistill,LLM4RecTeacher,LLM4RecStudent\n", 1,
          "LLM4RecText does not exist in model.py (ImportError); distill.py never uses it."),
    Patch("distill-trainer-import", "distill.py",
          "from utils.train_utils import CDRTrainer,RecDistillationTrainer,DistillationTrainingArguments\n",
          "from utils.train_utils import RecDistillationTrainer,DistillationTrainingArguments\n", 1,
          "CDRTrainer does not exist in utils/train_utils.py (ImportError); distill.py never uses it."),
    Patch("seed-finetune", "finetune.py",
          "per_device_train_batch_size=micro_batch_size,\n",
          f"per_device_train_batch_size=micro_batch_size, seed=int(os.environ.get(\"{SEED_ENV}\", \"42\")),\n", 2,
          "no seed flag: the Trainer always seeds 42. The benchmark runs 3 seeds a side (42 stays the default)."),
    Patch("seed-distill", "distill.py",
          "per_device_train_batch_size=micro_batch_size,\n",
          f"per_device_train_batch_size=micro_batch_size, seed=int(os.environ.get(\"{SEED_ENV}\", \"42\")),\n", 4,
          "as seed-finetune, for the student's trainers (training and the reload for their own test)."),
    Patch("no-tensorboard-finetune", "finetune.py", "report_to=\"tensorboard\"", "report_to=\"none\"", 2,
          "tensorboard is not installed; it only logs (their log.txt, written by SLMTrainer.log, stays)."),
    Patch("no-tensorboard-distill", "distill.py", "report_to=\"tensorboard\"", "report_to=\"none\"", 4,
          "as no-tensorboard-finetune."),
    Patch("loader-workers-finetune", "finetune.py", "dataloader_num_workers=64,",
          "dataloader_num_workers=int(os.environ.get(\"AUTHORS_LOADER_WORKERS\", \"64\")),", 2,
          "64 loader processes a DataLoader swamp a 2-core CPU check; their 64 stays the default."),
    Patch("loader-workers-distill", "distill.py", "dataloader_num_workers=20,",
          "dataloader_num_workers=int(os.environ.get(\"AUTHORS_LOADER_WORKERS\", \"20\")),", 4,
          "as loader-workers-finetune (their 20 stays the default)."),
    Patch("fp16-finetune", "finetune.py", "fp16=True,", "fp16=os.environ.get(\"AUTHORS_FP16\", \"1\") == \"1\",", 2,
          "fp16 autocast needs a GPU; the CPU check sets AUTHORS_FP16=0. Their fp16 stays the default."),
    Patch("fp16-distill", "distill.py", "fp16=True,", "fp16=os.environ.get(\"AUTHORS_FP16\", \"1\") == \"1\",", 4,
          "as fp16-finetune."),
)


class PatchError(RuntimeError):
    pass


def apply_patches(tree: Path, patches: tuple[Patch, ...] = PATCHES) -> list[str]:
    """Apply every patch to the files under `tree` in place; returns the names applied.

    All fragments are checked before any file is written, so a failed check leaves `tree` untouched.
    """
    texts: dict[str, str] = {}
    for p in patches:
        path = tree / p.path
        if p.path not in texts:
            if not path.is_file():
                raise PatchError(f"patch {p.name}: {path} does not exist; is {tree} a checkout of "
                                 f"WujiangXu/SLMRec at {PINNED_COMMIT}?")
            texts[p.path] = path.read_text()
        found = texts[p.path].count(p.old)
        if found != p.count:
            raise PatchError(
                f"patch {p.name}: expected {p.count} occurrence(s) of its fragment in {p.path}, found {found}. "
                f"The tree must be WujiangXu/SLMRec at {PINNED_COMMIT}, unpatched (git -C DIR checkout "
                f"{PINNED_COMMIT}; a tree patched once already fails here)."
            )
        texts[p.path] = texts[p.path].replace(p.old, p.new)
    for rel, text in texts.items():
        (tree / rel).write_text(text)
    return [p.name for p in patches]


def prepare_tree(source: Path, dest: Path) -> Path:
    """Copy the authors' checkout `source` to `dest` (replacing it) and patch the copy."""
    source, dest = Path(source), Path(dest)
    if not (source / "finetune.py").is_file():
        raise PatchError(f"{source} holds no finetune.py: give --source a checkout of WujiangXu/SLMRec at "
                         f"{PINNED_COMMIT} (see benchmarks/authors_code/README.md)")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(".git", "__pycache__"))
    apply_patches(dest)
    return dest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    try:
        prepare_tree(args.source, args.dest)
    except PatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"patched copy in {args.dest} ({len(PATCHES)} patches)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
