"""The authors' SLMRec code beside the book's: same split, backbone and item table, one evaluator.

For each seed it trains, with the authors' code (WujiangXu/SLMRec at 0555b8d, patched by patches.py,
run in a second Python environment with transformers 4.45), E4SRec_4, E4SRec_8 and the SLMRec_4<-8
student with KD and L_ms on (`--distill_type align --is_cls_multiple True`); then the book's own
E4SRec_4, E4SRec_8 and SLMRec_4<-8 (+D_norm +L_ms) through `slmrec_lib.experiment.run`. Every model
is scored by the book's evaluator (`evaluation.rank_positives`: fixed seeded 1 + 999 candidates, ties
against the positive) in fp32, and the number of negatives tied with the positive is kept per user.

Their checkpoints are scored by loading their weights into the book's `LLMRec` of the same depth
(LoRA, input_proj and score carry over by name; the frozen backbone and item table are checked equal).
That this is exact is checked on every run: their own model (in their environment) and the book's
model with their weights give the user vectors of 64 test users, and the rows record the largest
difference (`adapter_max_abs_diff`); their model must also read the same 30 items for each user.

    python benchmarks/authors_code/run.py --source DIR --dataset beauty --seeds 0 1 2 \
        --models e4srec_4 e4srec_8 slmrec_4_8 --backbone smollm2 \
        --item-table results/gpu/runs/80b134b6f72f/item_table.pt \
        --authors-site DIR --out results/benchmarks/authors_code_beauty.csv

Output: one CSV, columns code (authors|book), model, seed, protocol, metric, value, train_seconds,
device, commit. Work files (patched tree, checkpoints, the book's run folders) go to --work; a second
call with the same --work resumes: finished trainings are not repeated.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # the repository, so slmrec_lib imports from anywhere
sys.path.insert(0, str(HERE))

from patches import PINNED_COMMIT, prepare_tree  # noqa: E402

MODELS = {  # name -> (display label, layers, teacher layers)
    "e4srec_4": ("E4SRec_4", 4, None),
    "e4srec_8": ("E4SRec_8", 8, None),
    "slmrec_4_8": ("SLMRec_4<-8", 4, 8),
}
ITEM_DIM = 128  # their model hard-codes input_dim=128
# Their training settings per profile: the paper's (lr 1e-3, batch 256, 3 / 5 epochs, warmup 100 / 50)
# on one GPU; their eval/save every 100 steps and best checkpoint by validation MRR are left as they are.
AUTHORS_TRAIN = {
    "gpu": dict(teacher=dict(micro_batch_size=256, num_epochs=3, learning_rate=1e-3, warmup_steps=100),
                student=dict(micro_batch_size=256, num_epochs=5, learning_rate=1e-3, warmup_steps=50), steps={}),
    "smoke": dict(teacher=dict(micro_batch_size=32, num_epochs=1, learning_rate=1e-3, warmup_steps=2),
                  student=dict(micro_batch_size=32, num_epochs=1, learning_rate=1e-3, warmup_steps=2),
                  steps=dict(eval_steps=4, save_steps=4)),
}
EXACTNESS_USERS = 64
COLUMNS = ["code", "model", "seed", "protocol", "metric", "value", "train_seconds", "device", "commit"]


class BenchmarkError(RuntimeError):
    pass


# ------------------------------------------------------------------------------------------ profiles
def book_profile(name: str, dataset: str, backbone: str | None):
    """The book's profile for this benchmark: `gpu` as it is, or a CPU-sized `smoke` (an HF backbone
    folder, the gpu profile's LLM settings and prompt, a 128-d item table, 1 + 999 candidates, a few steps)."""
    from slmrec_lib.profiles import get_profile

    gpu = get_profile("gpu")
    if name == "gpu":
        prof = gpu
    elif name == "smoke":
        smoke = get_profile("smoke")
        prof = get_profile("smoke", depth=8, mid=8, small=4, n_negatives=999, full_ranking=False,
                           item_table_params=replace(gpu.item_table_params, layers=1, max_len=30),
                           llm_params=gpu.llm_params,
                           teacher_train=replace(smoke.teacher_train, lr=1e-3),
                           student_train=replace(smoke.student_train, lr=1e-3))
    else:
        raise BenchmarkError(f"unknown --profile {name!r}: use 'gpu' (the H200) or 'smoke' (the CPU check)")
    prof = replace(prof, datasets=(dataset,))
    if backbone and backbone != prof.backbone:
        prof = replace(prof, backbone=backbone)
    if prof.backbone.startswith("tiny"):
        raise BenchmarkError("the authors' code loads its backbone from a folder: give --backbone a folder "
                             "(smoke.py writes a tiny one) or 'smollm2'")
    return prof


# ------------------------------------------------------------------------------------------ backbone
def backbone_folder(spec: str) -> Path:
    """The HF folder behind a book backbone spec ("smollm2": the de-quantised cache, made if missing)."""
    from slmrec_lib import backbones

    if spec == "smollm2":
        folder = backbones.smollm2_cache_path(backbones.smollm2_gguf_path())
        if not (folder / "DONE").is_file():
            backbones.load_backbone("smollm2")  # de-quantises the GGUF once into the cache
        return folder
    folder = Path(spec).expanduser()
    if not (folder / "config.json").is_file():
        raise BenchmarkError(f"--backbone {spec!r} is neither 'smollm2' nor a folder with config.json")
    return folder


def folder_for_transformers_445(src: Path, dest: Path) -> Path:
    """A view of backbone folder `src` that transformers 4.45 reads as transformers 5 does.

    Weight files are linked; config.json gains `rope_theta` from `rope_parameters` (4.45 ignores the
    latter and would fall back to 10000: SmolLM2's is 100000), and tokenizer_config.json names the
    generic fast tokenizer class (4.45 does not know transformers 5's class names; both read
    tokenizer.json, so the ids are the same, which run.py checks) and returns input ids and attention
    mask only, as LLaMA's tokenizer does (their model unpacks exactly those two).
    """
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for f in src.iterdir():
        if f.name not in ("config.json", "tokenizer_config.json") and f.is_file():
            os.symlink(f.resolve(), dest / f.name)
    config = json.loads((src / "config.json").read_text())
    rope = config.get("rope_parameters") or {}
    if "rope_theta" not in config and "rope_theta" in rope:
        config["rope_theta"] = rope["rope_theta"]
    if "rope_theta" not in config:
        raise BenchmarkError(f"{src}/config.json has neither rope_theta nor rope_parameters.rope_theta")
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    tok_path = src / "tokenizer_config.json"
    if not (src / "tokenizer.json").is_file():
        raise BenchmarkError(f"{src} has no tokenizer.json (a fast tokenizer), which both sides must read")
    tok = json.loads(tok_path.read_text()) if tok_path.is_file() else {}
    tok["tokenizer_class"] = "PreTrainedTokenizerFast"
    tok["model_input_names"] = ["input_ids", "attention_mask"]  # as LLaMA's: their code unpacks two outputs
    (dest / "tokenizer_config.json").write_text(json.dumps(tok, indent=2))
    return dest


# ------------------------------------------------------------------------------------- data export
def export_for_authors(split, table: torch.Tensor, tree: Path, domain: str) -> None:
    """The book's split and item table in their layout: `./sasrec_<domain>/sasrec_item.pkl` and
    `./dataset/sequential/<domain>.csv` (reviewerID, asin = JSON list of item ids, oldest first).

    Ids stay the book's (1..n_items, 0 padding); their code splits each list as the book does
    (train [:-3] -> [-3], valid [:-2] -> [-2], test [:-1] -> [-1])."""
    if table.dim() != 2 or table.shape != (split.n_items + 1, ITEM_DIM):
        raise BenchmarkError(f"item table is {tuple(table.shape)}; their model needs [{split.n_items + 1}, {ITEM_DIM}] "
                             f"(n_items + 1 rows of {ITEM_DIM}-d SASRec embeddings)")
    (tree / f"sasrec_{domain}").mkdir(parents=True, exist_ok=True)
    with open(tree / f"sasrec_{domain}" / "sasrec_item.pkl", "wb") as fh:
        pickle.dump({"item_embedding": table.detach().float().cpu().clone()}, fh)
    sequences = split.data.sequences
    frame = pd.DataFrame({"reviewerID": [f"u{u}" for u in range(len(sequences))],
                          "asin": [json.dumps([int(i) for i in s]) for s in sequences]})
    (tree / "dataset" / "sequential").mkdir(parents=True, exist_ok=True)
    frame.to_csv(tree / "dataset" / "sequential" / f"{domain}.csv", index=False)


# -------------------------------------------------------------------------------- the authors' runs
def check_authors_env(python: str, site: str) -> None:
    out = subprocess.run([python, "-c", "import transformers, peft; print(transformers.__version__, peft.__version__)"],
                         env=_authors_env(site, 0), capture_output=True, text=True)
    version = out.stdout.split()
    if out.returncode != 0 or not version or not version[0].startswith("4.45"):
        raise BenchmarkError(
            f"the authors' environment ({python}, PYTHONPATH={site}) must give transformers 4.45.x and peft, got "
            f"{out.stdout.strip() or out.stderr.strip()[-300:]}. Install the wheels of README.md with "
            "`pip install --no-deps --target DIR ...` and pass --authors-site DIR.")


def _authors_env(site: str, seed: int, cpu: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=site, AUTHORS_SEED=str(seed), TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    if cpu:  # the CPU check: no fp16 autocast, few loader processes
        env.update(AUTHORS_FP16="0", AUTHORS_LOADER_WORKERS="0")
    return env


def _run_logged(cmd: list[str], cwd: Path, env: dict, log: Path) -> float:
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log.read_text()[-3000:]
        raise BenchmarkError(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}); end of {log}:\n{tail}")
    return seconds


def best_checkpoint(out_dir: Path, tree: Path) -> Path:
    """Their best checkpoint (by validation MRR) as their Trainer recorded it in the last checkpoint."""
    ckpts = sorted(out_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    if not ckpts:
        raise BenchmarkError(f"{out_dir} holds no checkpoint: their run saved nothing (fewer steps than save_steps?)")
    state = json.loads((ckpts[-1] / "trainer_state.json").read_text())
    best = state.get("best_model_checkpoint")
    if not best:
        raise BenchmarkError(f"{ckpts[-1]}/trainer_state.json names no best checkpoint (no validation ran)")
    path = Path(best) if Path(best).is_absolute() else tree / best
    if not path.is_dir():
        raise BenchmarkError(f"their best checkpoint {path} is missing (removed by save_total_limit?)")
    return path


def _their_log(out_dir: Path) -> tuple[float | None, dict]:
    """(train_runtime, their own test metrics) from the log.txt their trainer appends to."""
    runtime, test = None, {}
    text = (out_dir / "log.txt").read_text() if (out_dir / "log.txt").is_file() else ""
    decoder = json.JSONDecoder()
    pos = 0
    while pos < len(text):  # JSON objects, mostly one a line; the final test dict has no newline
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        obj, pos = decoder.raw_decode(text, pos)
        if "train_runtime" in obj:
            runtime = float(obj["train_runtime"])
        if any(k.startswith("test_") for k in obj):
            test = obj
    return runtime, test


def train_authors(name: str, seed: int, ctx: dict) -> dict:
    """Train one of their models (or read back a finished one); returns its record."""
    label, layers, teacher = MODELS[name]
    tree, out_dir = ctx["tree"], ctx["tree"] / "out" / f"{name}_seed{seed}"
    done = out_dir / "done.json"
    if done.is_file():
        return json.loads(done.read_text())
    if out_dir.exists():
        shutil.rmtree(out_dir)  # an interrupted run starts again (their scripts do not resume)
    out_dir.mkdir(parents=True)
    hp = AUTHORS_TRAIN[ctx["profile"]]
    flags = dict(base_model=str(ctx["backbone_445"]), task_type="sequential", output_dir=str(out_dir.relative_to(tree)),
                 domain_type=ctx["domain"], **hp["steps"])
    if teacher is None:
        script, flags = "finetune.py", dict(flags, llama_decoder_nums=layers, **hp["teacher"])
    else:
        teacher_run = train_authors(f"e4srec_{teacher}", seed, ctx)
        script = "distill.py"
        flags = dict(flags, llama_decoder_nums_teacher=teacher, llama_decoder_nums_student=layers,
                     distill_type="align", is_cls_multiple=True, distill_block=4,
                     teacher_resume_from_checkpoint=teacher_run["best_checkpoint"], **hp["student"])
    argv = [f"--{k}={v}" for k, v in flags.items()]
    print(f"[authors] {label} seed {seed}: {script}", flush=True)
    wall = _run_logged([ctx["python"], str(HERE / "authors_side.py"), "train", script, *argv], tree,
                       _authors_env(ctx["site"], seed, ctx["cpu"]), out_dir / "stdout.log")
    runtime, own_test = _their_log(out_dir)
    record = dict(name=name, seed=seed, best_checkpoint=str(best_checkpoint(out_dir, tree)),
                  train_seconds=runtime if runtime is not None else wall, wall_seconds=wall, own_test=own_test)
    done.write_text(json.dumps(record, indent=2))
    return record


def authors_vectors(record: dict, ctx: dict) -> dict:
    layers = MODELS[record["name"]][1]
    out = Path(record["best_checkpoint"]) / "user_vectors.npz"
    if not out.is_file():
        _run_logged([ctx["python"], str(HERE / "authors_side.py"), "vectors", "--checkpoint", record["best_checkpoint"],
                     "--layers", str(layers), "--domain", ctx["domain"], "--users", str(EXACTNESS_USERS),
                     "--base_model", str(ctx["backbone_445"]), "--out", str(out)],
                    ctx["tree"], _authors_env(ctx["site"], 0, ctx["cpu"]), out.with_suffix(".log"))
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


# -------------------------------------------------------------------------------- the book's models
def book_llmrec(cfg, table: torch.Tensor):
    """The book's LLMRec of an E4SRec / SLMRec run's student depth and settings, scoring in fp32."""
    from slmrec_lib.builders import load_backbone_spec
    from slmrec_lib.models.llmrec import LLMRec

    backbone, tokenizer = load_backbone_spec(cfg.model.backbone)
    return LLMRec(backbone, tokenizer, table, replace(cfg.model.params, eval_bf16=False)).eval()  # no LoRA dropout


def authors_weights(checkpoint: Path, model, table: torch.Tensor) -> dict[str, torch.Tensor]:
    """Their checkpoint's LoRA / input_proj / score under the book's names, after checking that the
    frozen backbone weights and the item table they trained with are the book's."""
    from safetensors.torch import load_file

    state = load_file(str(checkpoint / "model.safetensors"))
    own = dict(model.named_parameters())
    out, compared = {}, 0
    for key, value in state.items():
        if key.startswith("llama_model."):
            book_key = "llm." + key[len("llama_model."):]
            if ".lora_" in key:
                out[book_key] = value
            elif book_key in own:  # frozen backbone weight: must be the book's
                if not torch.equal(own[book_key].detach().cpu(), value.to(own[book_key].dtype)):
                    raise BenchmarkError(f"{checkpoint}: backbone weight {key} differs from the book's backbone")
                compared += 1
        elif key.split(".")[0] in ("input_proj", "score"):
            out[key] = value
        elif key == "input_embeds.weight" and not torch.equal(value.float(), table.float()):
            raise BenchmarkError(f"{checkpoint}: their item table is not the exported one")
    if compared == 0:
        raise BenchmarkError(f"{checkpoint}: no backbone weight matched the book's names; cannot check the backbone")
    return out


def book_weights(cfg, prof) -> dict[str, torch.Tensor]:
    """A finished book run's trainable weights (model.pt) under LLMRec's names (a student's own)."""
    from slmrec_lib.experiment import load_weights

    weights = load_weights(cfg, prof, "model.pt")
    if cfg.model.kind == "slmrec":
        weights = {k[len("student."):]: v for k, v in weights.items() if k.startswith("student.")}
    return weights


def score_rows(model, split, prof) -> tuple[str, dict[str, float]]:
    """The book's evaluator on the test stage (fixed seeded 1 + n candidates, ties against the
    positive) on fp32 scores, plus the negatives tied with the positive: mean a user, share of users."""
    from slmrec_lib.evaluation import EvalProtocol, metrics_from_ranks, rank_positives

    protocol = EvalProtocol("sampled", prof.n_negatives, 0)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    ranks, ties = rank_positives(model, split, protocol, "test", batch_size=256, return_ties=True)
    out = metrics_from_ranks(ranks, protocol.ks)
    out["ties_per_user"] = float(np.mean(ties))
    out["users_with_ties"] = float(np.mean(np.asarray(ties) > 0))
    return protocol.name, out


def exactness(model, split, vectors: dict) -> float:
    """Largest |their user vector - the book's with their weights| on the first test users."""
    from slmrec_lib.data import eval_inputs

    inputs = eval_inputs(split, "test", model.max_len)[0][: len(vectors["inputs"])]
    if not np.array_equal(inputs.numpy(), vectors["inputs"]):
        raise BenchmarkError("their model reads other items than the book's for the same test users: the CSV "
                             "export and the book's split disagree")
    if not (np.array_equal(model.instr_ids.cpu().numpy(), vectors["instruct_ids"].reshape(-1))
            and np.array_equal(model.resp_ids.cpu().numpy(), vectors["response_ids"].reshape(-1))):
        raise BenchmarkError("their tokenizer gives other prompt ids than the book's")
    device = next(model.parameters()).device
    model.eval()  # LoRA dropout off, as in their predict
    with torch.no_grad():
        ours = model.score(model.user_state(inputs.to(device))).float().cpu().numpy()
    return float(np.abs(ours - vectors["vectors"]).max())


# ------------------------------------------------------------------------------------------- driver
def _rows(code, label, seed, protocol, metrics, train_seconds, device, commit):
    return [dict(code=code, model=label, seed=seed, protocol=protocol, metric=m, value=v, train_seconds=train_seconds,
                 device=device, commit=commit) for m, v in metrics.items()]


def _write(rows: list[dict], out: Path) -> None:
    from slmrec_lib.util import atomic_write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(pd.DataFrame(rows, columns=COLUMNS).to_csv(index=False), out)


def item_table_for_book(item_run, prof, given: Path | None) -> torch.Tensor:
    """The book's SASRec item table: the finished run folder given (copied into the benchmark's
    results, so the book's LLM runs read it too) or, without --item-table, trained there."""
    from slmrec_lib.experiment import load_weights, run, run_dir

    folder = run_dir(item_run, prof)
    if given is not None:
        given = Path(given)
        given = given.parent if given.is_file() else given
        if given.name != item_run.hash or not (given / "rows.csv").is_file():
            raise BenchmarkError(
                f"--item-table {given} is not the finished item-table run of this benchmark: it must be the run "
                f"folder {item_run.hash} (the book's SASRec item table of {item_run.data.dataset} under profile "
                f"{prof.name}, with rows.csv and item_embeddings.pt); leave --item-table out to train it here")
        if not (folder / "rows.csv").is_file():
            shutil.copytree(given, folder, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("checkpoint*", ".lock", "ranks-*"))
    run(item_run, prof)
    return load_weights(item_run, prof, "item_embeddings.pt")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help=f"checkout of WujiangXu/SLMRec at {PINNED_COMMIT}")
    parser.add_argument("--dataset", default="beauty", help="a book dataset name or a .txt sequence file")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--out", type=Path, required=True, help="the CSV to write")
    parser.add_argument("--backbone", default=None, help="'smollm2' (the profile's) or an HF backbone folder")
    parser.add_argument("--item-table", type=Path, default=None, help="item_table.pt of the book's item-table run")
    parser.add_argument("--profile", default="gpu", choices=("gpu", "smoke"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/authors_code_work"))
    parser.add_argument("--authors-python", default=sys.executable, help="python of the authors' environment")
    parser.add_argument("--authors-site", default=os.environ.get("AUTHORS_SITE", ""),
                        help="PYTHONPATH of the authors' environment (transformers 4.45 wheels)")
    parser.add_argument("--codes", nargs="+", default=["authors", "book"], choices=("authors", "book"))
    args = parser.parse_args(argv)
    try:
        return _main(args)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _main(args) -> int:
    work = args.work.resolve()
    os.environ["SLMREC_RESULTS_DIR"] = str(work / "book_results")  # the book's runs train here, apart
    from slmrec_lib import studies
    from slmrec_lib.builders import load_trainable
    from slmrec_lib.experiment import device_name, get_split, git_sha, run

    prof = book_profile(args.profile, args.dataset, args.backbone)
    source = args.source.resolve()
    if (source / ".git").exists():
        head = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
        if not head.startswith(PINNED_COMMIT):
            raise BenchmarkError(f"{source} is at {head.strip()[:12]}, not {PINNED_COMMIT}: git -C {source} checkout "
                                 f"{PINNED_COMMIT}")
    cfgs = {(name, seed): (studies.slmrec(prof, args.dataset, 4, 8, seed) if MODELS[name][2] else
                           studies.e4srec(prof, args.dataset, MODELS[name][1], seed))
            for name in args.models for seed in args.seeds}
    split = get_split(studies.data(prof, args.dataset))
    table = item_table_for_book(studies.item_run(prof, args.dataset), prof, args.item_table)
    device, book_commit = device_name(), git_sha()
    ctx = None
    if "authors" in args.codes:
        if not args.authors_site:
            raise BenchmarkError("--authors-site (or $AUTHORS_SITE) must name the authors' environment's packages")
        check_authors_env(args.authors_python, args.authors_site)
        tree = prepare_tree(source, work / "authors_tree") if not (work / "authors_tree" / "PATCHED").is_file() \
            else work / "authors_tree"
        (tree / "PATCHED").write_text(f"{source} at {PINNED_COMMIT}, benchmarks/authors_code/patches.py\n")
        domain = Path(args.dataset).stem.lower()
        export_for_authors(split, table, tree, domain)
        ctx = dict(tree=tree, domain=domain, profile=args.profile, python=args.authors_python, site=args.authors_site,
                   cpu=not torch.cuda.is_available(),
                   backbone_445=folder_for_transformers_445(backbone_folder(prof.backbone), work / "backbone_445"))
    rows: list[dict] = []
    for seed in args.seeds:
        for name in args.models:
            label = MODELS[name][0]
            cfg = cfgs[(name, seed)]
            if ctx is not None:
                record = train_authors(name, seed, ctx)
                model = book_llmrec(cfg, table)
                load_trainable(model, authors_weights(Path(record["best_checkpoint"]), model, table), record["best_checkpoint"])
                protocol, metrics = score_rows(model, split, prof)
                diff = exactness(model, split, authors_vectors(record, ctx))
                rows += _rows("authors", label, seed, protocol, metrics, record["train_seconds"], device, PINNED_COMMIT)
                rows += _rows("authors", label, seed, f"exactness-{EXACTNESS_USERS}-users",
                              {"adapter_max_abs_diff": diff}, record["train_seconds"], device, PINNED_COMMIT)
                own = {k[len("test_"):]: v for k, v in record["own_test"].items() if k.startswith("test_")}
                own = {k.replace("hit@", "HR@").replace("ndcg@", "NDCG@").replace("mrr", "MRR"): v for k, v in own.items()
                       if k.startswith(("hit@", "ndcg@", "mrr"))}
                rows += _rows("authors", label, seed, "authors-own-redrawn-999", own, record["train_seconds"], device,
                              PINNED_COMMIT)
                _write(rows, args.out)
                print(f"[authors] {label} seed {seed}: NDCG@10 {metrics['NDCG@10']:.4f}, adapter diff {diff:.2e}",
                      flush=True)
            if "book" in args.codes:
                frame = run(cfg, prof)
                model = book_llmrec(cfg, table)
                load_trainable(model, book_weights(cfg, prof), cfg.hash)
                protocol, metrics = score_rows(model, split, prof)
                rows += _rows("book", label, seed, protocol, metrics, float(frame["train_seconds"].iloc[0]), device,
                              book_commit)
                _write(rows, args.out)
                print(f"[book] {label} seed {seed}: NDCG@10 {metrics['NDCG@10']:.4f}", flush=True)
    print(f"wrote {len(rows)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
