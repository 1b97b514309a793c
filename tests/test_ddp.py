"""Data-parallel training of the LLM recommender: two CPU processes (gloo) end with identical weights.

The test launches this file with `torch.distributed.run` (torchrun), two processes; each builds the
tiny-backbone LLMRec from a DIFFERENT seed and trains it through `training.fit` (accelerate). DDP must
broadcast rank 0's weights at the start and all-reduce gradients at every step, so both ranks end
identical, and different from where they started.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


def _worker(out: Path) -> None:
    import torch.distributed as dist

    from slmrec_lib.backbones import tiny_backbone
    from slmrec_lib.data import leave_one_out, synthetic, train_examples
    from slmrec_lib.models.llmrec import LLMRec, LLMRecConfig
    from slmrec_lib.training import TrainConfig, fit

    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    backbone, tok = tiny_backbone()
    torch.manual_seed(100 + rank)  # different projections and item table on each rank
    model = LLMRec(backbone, tok, torch.randn(31, 8), LLMRecConfig(max_len=5, instruction="History:\n"))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    split = leave_one_out(synthetic(n_users=64, n_items=30, seed=0, max_len=10))
    examples = train_examples(split, max_len=5, targets="last")
    cfg = TrainConfig(lr=1e-2, batch_size=16, max_steps=4, warmup_steps=0, patience=None, progress=False)
    fit(model, examples, None, cfg, out / f"run{rank}")
    info = {"world": dist.get_world_size() if dist.is_initialized() else 1,
            "backend": dist.get_backend() if dist.is_initialized() else None}
    torch.save({"start": start, "end": model.state_dict(), "info": info}, out / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_end_with_identical_weights(tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "ACCELERATE_USE_CPU": "true"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), __file__, str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["info"] == r1["info"] == {"world": 2, "backend": "gloo"}, json.dumps([r0["info"], r1["info"]])
    # the ranks started apart (different seeds) ...
    assert not torch.equal(r0["start"]["input_proj.weight"], r1["start"]["input_proj.weight"])
    # ... and end identical in every tensor, trainable or frozen
    assert r0["end"].keys() == r1["end"].keys()
    for k in r0["end"]:
        assert torch.equal(r0["end"][k], r1["end"][k]), k
    # training moved the (broadcast) weights
    assert not torch.equal(r0["end"]["input_proj.weight"], r0["start"]["input_proj.weight"])
    assert any(not torch.equal(r0["end"][k], r0["start"][k]) for k in r0["end"] if "lora_B" in k)


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
