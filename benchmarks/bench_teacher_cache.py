"""Student training step time with the live teacher and with the teacher-state cache (SLMRec offline).

Builds an SLMRec student of `--student-layers` from a frozen `--teacher-layers` teacher on one
backbone spec (default SmolLM2's shape with random weights; `llama2-7b-shape` for the paper's scale)
through the library's own classes, and times one training step (forward, backward, AdamW step) on
`--rows` rows, with `teacher_cache` off (the teacher runs every step) and on (`prepare_training`
computed its block-end states once; the step reads them by `batch["row"]`). The cache's one-off
pass over `--examples` rows is timed too, and each row gives the per-run estimate
prepare + steps x step for `--steps` steps. `--reference-layers` also times the train step of a
plain E4SRec of that depth (the E4SRec* whose training time the student is compared against).
Warm-up first, device synchronised around each step, median of `--repeats`; bf16 autocast on CUDA.
Writes `results/<profile>/teacher_cache.csv` (or `--out`).

    python benchmarks/bench_teacher_cache.py --profile gpu --teacher-layers 30 --reference-layers 30
    python benchmarks/bench_teacher_cache.py --profile gpu --backbone llama2-7b-shape --teacher-layers 8 \\
        --reference-layers 32 --examples 2048
    python benchmarks/bench_teacher_cache.py --profile smoke --backbone tiny --student-layers 1 --teacher-layers 2 \\
        --examples 64 --rows 8 --n-items 100                                             # CPU smoke
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from slmrec_lib import paths  # noqa: E402
from slmrec_lib.backbones import count_params, load_backbone  # noqa: E402
from slmrec_lib.models.llmrec import LLMRec, LLMRecConfig  # noqa: E402
from slmrec_lib.models.slmrec import DistillConfig, SLMRecStudent  # noqa: E402
from slmrec_lib.util import atomic_write_text  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scoring import machine, sync  # noqa: E402


def autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def llmrec(args, layers: int, table: torch.Tensor, device: torch.device) -> LLMRec:
    dtype = torch.bfloat16 if args.bf16_weights else torch.float32
    backbone, tok = load_backbone(args.backbone, layers=layers, dtype=dtype, device=device)
    return LLMRec(backbone, tok, table, LLMRecConfig(n_layers=layers, max_len=args.max_len)).to(device)


def step_seconds(model, examples, args, device) -> list[float]:
    """Seconds of each timed training step (after the warm-up steps), rows drawn in order."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    out = []
    n = len(examples["input"])
    for i in range(args.warmup + args.repeats):
        row = (torch.arange(args.rows) + i * args.rows) % n
        batch = {k: v[row].to(device) for k, v in examples.items()} | {"row": row.to(device)}
        sync(device)
        t0 = time.perf_counter()
        with autocast(device):
            loss, _ = model(batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if i >= args.warmup:
            out.append(time.perf_counter() - t0)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="gpu", help="results/<profile>/teacher_cache.csv")
    ap.add_argument("--backbone", default="smollm2-random", help="backbone spec (backbones.load_backbone)")
    ap.add_argument("--student-layers", type=int, default=4)
    ap.add_argument("--teacher-layers", type=int, default=8)
    ap.add_argument("--reference-layers", type=int, default=None, help="also time a plain E4SRec of this depth")
    ap.add_argument("--rows", type=int, default=32, help="rows a training step (the authors' 32 a GPU)")
    ap.add_argument("--examples", type=int, default=4096, help="training rows the cache covers")
    ap.add_argument("--steps", type=int, default=None, help="steps of a run for the estimate (default: one epoch)")
    ap.add_argument("--n-items", type=int, default=12101)
    ap.add_argument("--max-len", type=int, default=30)
    ap.add_argument("--bf16-weights", action="store_true", help="backbone weights in bf16 (the 7B shape needs it)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    table = torch.randn(args.n_items + 1, 128, generator=g) * 0.1
    table[0] = 0
    inp = torch.randint(1, args.n_items + 1, (args.examples, args.max_len), generator=g)
    inp[: args.examples // 4, : args.max_len // 2] = 0
    tgt = torch.zeros_like(inp)
    tgt[:, -1] = torch.randint(1, args.n_items + 1, (args.examples,), generator=g)
    examples = {"input": inp, "target": tgt}
    steps = args.steps or -(-args.examples // args.rows)
    where = machine(device)
    teacher = llmrec(args, args.teacher_layers, table, device)
    rows = []
    base = dict(backbone=args.backbone, student_layers=args.student_layers, teacher_layers=args.teacher_layers,
                rows=args.rows, examples=args.examples, steps=steps, repeats=args.repeats, device=where,
                torch=torch.__version__)
    for cached in (False, True):
        student = llmrec(args, args.student_layers, table, device)
        blocks = min(DistillConfig().blocks, args.student_layers)  # as timing.py: b = 4 unless the student is shallower
        distill = DistillConfig(blocks=blocks, w_ms=1.0 if blocks > 1 else 0.0, teacher_cache=cached)
        model = SLMRecStudent(student, teacher, distill).to(device)
        sync(device)
        t0 = time.perf_counter()
        with autocast(device):
            model.prepare_training(examples, device)
        sync(device)
        prepare = time.perf_counter() - t0
        assert (getattr(model, "_teacher_cache", None) is not None) == cached
        step = statistics.median(step_seconds(model, examples, args, device))
        rows.append(dict(base, model=f"SLMRec_{args.student_layers}<-{args.teacher_layers}", teacher_cache=cached,
                         step_ms=1e3 * step, prepare_s=prepare if cached else 0.0,
                         run_estimate_s=(prepare if cached else 0.0) + steps * step,
                         trainable_params=count_params(model, trainable_only=True)))
        print(f"teacher_cache={cached}: step {1e3 * step:.2f} ms, prepare {prepare:.2f} s, "
              f"run of {steps} steps ~ {rows[-1]['run_estimate_s']:.1f} s", flush=True)
        del model, student
    if args.reference_layers:
        del teacher
        ref = llmrec(args, args.reference_layers, table, device)
        step = statistics.median(step_seconds(ref, examples, args, device))
        rows.append(dict(base, model=f"E4SRec_{args.reference_layers}", student_layers=args.reference_layers,
                         teacher_layers=None, teacher_cache=None, step_ms=1e3 * step, prepare_s=0.0,
                         run_estimate_s=steps * step, trainable_params=count_params(ref, trainable_only=True)))
        print(f"E4SRec_{args.reference_layers}: step {1e3 * step:.2f} ms", flush=True)
    frame = pd.DataFrame(rows)
    ref_rows = frame[frame.model.str.startswith("E4SRec")]
    if not ref_rows.empty:
        frame["run_speedup_vs_reference"] = ref_rows.run_estimate_s.iloc[0] / frame.run_estimate_s
    out = Path(args.out) if args.out else paths.results_dir(args.profile) / "teacher_cache.csv"
    atomic_write_text(frame.to_csv(index=False), out)
    print(frame.to_string(index=False))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
