"""What runs inside the authors' environment (transformers 4.45, peft 0.13), with the patched tree as cwd.

    python authors_side.py train SCRIPT [their flags ...]   # seed every RNG from $AUTHORS_SEED, run SCRIPT
    python authors_side.py vectors --checkpoint DIR --layers K --domain D --users N --out FILE.npz

`train` seeds Python's, NumPy's and torch's generators before their script builds its model (their
scripts seed only the Trainer, after LoRA and the projections are initialised), then runs it as
`__main__`. `vectors` rebuilds their `LLM4Rec` of K layers from a checkpoint of theirs and writes the
user vectors (`score(last hidden state)`, fp32, no autocast) of the first N test users with the
input rows they came from: run.py compares them with the book's model that carries the same weights.
This file imports only the authors' modules and their dependencies, never slmrec_lib.
"""

from __future__ import annotations

import argparse
import os
import random
import runpy
import sys


def _seed_all(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(script: str, flags: list[str]) -> None:
    seed = int(os.environ.get("AUTHORS_SEED", "42"))
    _seed_all(seed)
    import transformers

    print(f"[authors_side] {script} seed {seed} transformers {transformers.__version__}", flush=True)
    sys.argv = [script, *flags]
    sys.path.insert(0, os.getcwd())
    runpy.run_path(script, run_name="__main__")


def vectors(checkpoint: str, layers: int, domain: str, users: int, out: str, base_model: str) -> None:
    import pickle

    import numpy as np
    import torch

    sys.path.insert(0, os.getcwd())
    from model import LLM4Rec  # their code (patched)
    from utils.data_utils import LLMDataset, SequentialCollator
    from utils.prompter import Prompter

    with open(f"./sasrec_{domain}/sasrec_item.pkl", "rb") as fh:
        item_embed = pickle.load(fh)["item_embedding"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = LLM4Rec(base_model=base_model, task_type="sequential", cache_dir="", input_dim=128, output_dim=0,
                    interval_nums=0, drop_type="trune", lora_r=16, lora_alpha=16, lora_dropout=0.05,
                    lora_target_modules=["gate_proj", "down_proj", "up_proj"], device_map=device,
                    instruction_text=Prompter("alpaca").generate_prompt("sequential"), train_stargy="lora",
                    user_embeds=None, input_embeds=item_embed, seq_len=30, llama_decoder_nums=layers)
    path = os.path.join(checkpoint, "model.safetensors")
    if os.path.isfile(path):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(os.path.join(checkpoint, "pytorch_model.bin"), map_location="cpu")
    missing, _ = model.load_state_dict(state, strict=False)  # a student's L_ms heads are extra
    if missing:
        raise RuntimeError(f"checkpoint {checkpoint} lacks {len(missing)} weights of LLM4Rec, e.g. {missing[:3]}")
    model.to(device).eval()
    data = LLMDataset(item_size=999, max_seq_length=30, data_type="test", csv_path=f"./dataset/sequential/{domain}.csv")
    batch = SequentialCollator()([data[i] for i in range(min(users, len(data)))])
    with torch.no_grad():
        vec = model.predict(batch["inputs"].to(device), batch["inputs_mask"].to(device))
    np.savez(out, vectors=vec.float().cpu().numpy(), inputs=batch["inputs"].numpy(),
             instruct_ids=model.instruct_ids.numpy(), response_ids=model.response_ids.numpy())
    print(f"[authors_side] {len(vec)} user vectors from {checkpoint} -> {out}", flush=True)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("train", "vectors"):
        raise SystemExit("usage: authors_side.py train SCRIPT [flags] | vectors --checkpoint ... (see the docstring)")
    if argv[0] == "train":
        if len(argv) < 2:
            raise SystemExit("authors_side.py train: name their script (finetune.py or distill.py)")
        train(argv[1], argv[2:])
        return
    parser = argparse.ArgumentParser(prog="authors_side.py vectors")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--layers", type=int, required=True)
    parser.add_argument("--domain", required=True)
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--base_model", required=True)
    parser.add_argument("--out", required=True)
    a = parser.parse_args(argv[1:])
    vectors(a.checkpoint, a.layers, a.domain, a.users, a.out, a.base_model)


if __name__ == "__main__":
    main()
