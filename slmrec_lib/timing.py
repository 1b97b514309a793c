"""Timing benchmark of the LLM recommenders: inference ms per user, training ms per optimizer step.

The paper's RQ2 table (Xu et al., ICLR 2025) reports wall-clock hours of whole trainings and of the
test evaluation on 8 GPUs. Here the same question is asked of the models themselves, under equal
conditions: E4SRec_k at the profile's `depth` / `mid` / `small` layers and the SLMRec student
(`small` layers) with its offline `mid`-layer teacher, all on the profile's backbone.

How a number is taken (the nanoGPT `bench.py` way): build the models, run `warmup` untimed calls of
each, then `repeats` timed calls, each bracketed by `torch.cuda.synchronize()` on a GPU so that
queued kernels are counted; the summary is the median over repeats. The models' repeats are
interleaved, so that a change in the machine's load falls on all of them alike (measured one model
after the other on shared cores, the first model measured came out 2-4x slower than its depth says).

- inference: `score_all` over the first `users` test histories in batches of `batch_size`, in eval
  mode without gradients; ms per user = call time / users.
- training: one forward + backward + AdamW step on the first `train_batch_size` training rows, in
  train mode (bf16 autocast on a GPU where the profile trains in bf16); for the student the step
  includes the frozen teacher's forward pass, as it does in training.
- on a CPU the benchmark runs on one thread (`cpu_threads`): on cores shared with other jobs, two
  threads were seen to run 4x slower than one (SmolLM2, 2 cores, load 4-5), and unevenly so; every
  row records the threads and the 1-minute load average, since shared cores make numbers indicative.

NOTE: weights are random (fresh LoRA and projections, a random item table of the right shape): time
does not depend on their values, and the benchmark then needs no trained run.
NOTE: the paper's "training time" is a whole training (epochs x steps); ours is per step, so a
speed-up here leaves out differences in the number of steps.

The paper's scale (`--scale paper-shape`): the same models built by the builder from the studies'
configs of the profile with backbone `llama2-7b-shape` (random, seeded) at the paper's 32 / 8 / 4
layers, bf16 weights built straight on the GPU (a timing-only argument of the builder: timing models
are not runs, so no run's hash changes), 32 training rows a step (the authors' rows a GPU), and the
SLMRec_4<-8 student timed twice: with its frozen teacher live at every step and with the teacher-state
cache (`prepare_training` over the first `cache_rows` training rows, its seconds recorded). Rows also
carry each model's inference and trainable parameter counts and go to `timing_paper_shape.csv`.

    python -m slmrec_lib.timing --profile gpu --dataset beauty   # writes results/<profile>/timing.csv
    python -m slmrec_lib.timing --profile gpu --dataset beauty --scale paper-shape   # timing_paper_shape.csv
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from . import paths
from .profiles import Profile, get_profile

MEASURES = ("inference_ms_per_user", "train_ms_per_step")
FILE = "timing.csv"
SCALES = ("profile", "paper-shape")  # the profile's own backbone, or Llama-2-7B's shape with random weights
PAPER_SHAPE = "llama2-7b-shape"  # the backbone spec of the paper-shape table
PAPER_DEPTHS = (32, 8, 4)  # E4SRec* / the teacher of SLMRec_4<-8 / the student
FILES = {"profile": FILE, "paper-shape": "timing_paper_shape.csv"}


@dataclass(frozen=True)
class TimingConfig:
    users: int = 32  # test users scored per inference call
    batch_size: int = 16  # users per score_all batch
    train_batch_size: int = 16  # training rows per optimizer step
    warmup: int = 1  # untimed calls before the timed ones
    repeats: int = 3  # timed calls; the summary is their median
    bf16: bool = False  # bf16 autocast on a GPU (as the profile trains)
    cpu_threads: int | None = 1  # torch threads while timing on a CPU (None: leave as set); restored after
    # (the paper-shape table only, left out of the hash when unset so the profile table's hash is as before)
    cache_rows: int | None = None  # training rows the student's teacher-state cache covers (None: no cached student)
    bf16_weights: bool = False  # backbone weights in bf16, built on the GPU (timing-only builder arguments)

    def __post_init__(self):
        for name in ("users", "batch_size", "train_batch_size", "repeats"):
            if getattr(self, name) < 1:
                raise ValueError(f"TimingConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"TimingConfig.warmup must be >= 0, got {self.warmup}")

    @property
    def hash(self) -> str:
        fields = asdict(self)
        for name in ("cache_rows", "bf16_weights"):  # fields added later: their defaults hash as before
            if fields[name] == TimingConfig.__dataclass_fields__[name].default:
                del fields[name]
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]


def settings_for(prof: Profile) -> TimingConfig:
    """Timing sizes of a profile: small on a CPU, the profile's own batches on a GPU."""
    bf16 = prof.teacher_train.mixed_precision == "bf16"
    if prof.gpu_required:
        return TimingConfig(users=1024, batch_size=256, train_batch_size=prof.teacher_train.batch_size,
                            warmup=3, repeats=10, bf16=bf16)
    if prof.backbone.startswith("tiny"):  # the smoke profile: a pipeline check, kept to seconds
        return TimingConfig(users=8, batch_size=8, train_batch_size=4, warmup=1, repeats=3)
    return TimingConfig(users=32, batch_size=16, train_batch_size=min(16, prof.teacher_train.batch_size),
                        warmup=1, repeats=3, bf16=bf16)


def paper_shape_settings(prof: Profile) -> TimingConfig:
    """Timing sizes of the paper-shape table: 768 users in batches of 256, the authors' 32 rows a training
    step, the cache over 1024 rows, bf16 weights on a GPU; seconds-sized on a CPU (tiny backbones)."""
    if prof.gpu_required:
        return TimingConfig(users=768, batch_size=256, train_batch_size=32, warmup=2, repeats=6, bf16=True,
                            cache_rows=1024, bf16_weights=True)
    return TimingConfig(users=8, batch_size=8, train_batch_size=4, warmup=1, repeats=2, cache_rows=16)


def paper_shape_profile(prof: Profile, backbone: str = PAPER_SHAPE,
                        depths: tuple[int, int, int] = PAPER_DEPTHS) -> Profile:
    """`prof` with the paper-shape backbone at the paper's depths (E4SRec*, teacher, student)."""
    depth, mid, small = depths
    if not depth >= mid > small >= 1:
        raise ValueError(f"paper-shape depths must be depth >= mid > small >= 1, got {depths}")
    return replace(prof, backbone=backbone, depth=depth, mid=mid, small=small)


# ------------------------------------------------------------------------------------------ timing
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(calls: dict[str, object], device: torch.device, warmup: int, repeats: int) -> dict[str, list[float]]:
    """Seconds of each of `repeats` calls of every `fn` in `calls`, after `warmup` untimed calls of each.

    The repeats are interleaved (fn1, fn2, ..., fn1, fn2, ...) so that a change of the machine's load
    during the benchmark falls on every model alike; the device is synchronised around each call.
    """
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    out = {key: [] for key in calls}
    for _ in range(repeats):
        for key, fn in calls.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            out[key].append(time.perf_counter() - t0)
    return out


def _autocast(device: torch.device, bf16: bool):
    if device.type == "cuda" and bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def inference_call(model, inputs: torch.Tensor, cfg: TimingConfig):
    """A call that scores every row of `inputs` [U, L] with `model.score_all` in eval mode, no grad."""
    device = next(model.parameters()).device
    inputs = inputs.to(device)
    model.eval()

    @torch.no_grad()
    def call():
        with _autocast(device, cfg.bf16):
            for start in range(0, len(inputs), cfg.batch_size):
                model.score_all(inputs[start : start + cfg.batch_size])

    return call


def train_call(model, batch: dict[str, torch.Tensor], cfg: TimingConfig):
    """A call that takes one forward + backward + AdamW step on `batch` in train mode (AdamW over the
    trainable parameters only: LoRA and the projections of an LLM model)."""
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step():
        model.train()
        with _autocast(device, cfg.bf16):
            loss, _ = model(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _device(model) -> torch.device:
    return next(model.parameters()).device


def inference_ms_per_user(model, inputs: torch.Tensor, cfg: TimingConfig) -> list[float]:
    """ms per user of `model.score_all` over `inputs` [U, L] (one value a repeat)."""
    seconds = timed({"m": inference_call(model, inputs, cfg)}, _device(model), cfg.warmup, cfg.repeats)["m"]
    return [1000 * s / len(inputs) for s in seconds]


def train_ms_per_step(model, batch: dict[str, torch.Tensor], cfg: TimingConfig) -> list[float]:
    """ms of one forward + backward + AdamW step on `batch` (one value a repeat)."""
    return [1000 * s for s in timed({"m": train_call(model, batch, cfg)}, _device(model), cfg.warmup, cfg.repeats)["m"]]


# ------------------------------------------------------------------------------------------ models
def _random_table(prof: Profile, split, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    table = torch.randn(split.n_items + 1, prof.item_table_params.hidden, generator=gen) * 0.1  # (n_items + 1, d0)
    table[0] = 0  # only its shape matters
    return table


def student_config(prof: Profile, dataset: str, seed: int, **distill):
    """The timed student: SLMRec_{small<-mid}, b = 4 unless the student is shallower (+D_norm +L_ms)."""
    from . import studies

    blocks = min(4, prof.small)
    variant = " +D_norm +L_ms" if blocks > 1 else " +D_norm"
    return studies.slmrec(prof, dataset, prof.small, prof.mid, seed, variant=variant, blocks=blocks, **distill)


def models_to_time(prof: Profile, dataset: str, split, seed: int = 0):
    """Yield (label, kind, model): E4SRec at depth / mid / small, then the SLMRec student with its teacher,
    each built by the runner's builder from the study's own config."""
    from . import studies
    from .builders import Artifacts, build_model

    table = _random_table(prof, split, seed)
    given = Artifacts(item_embeddings=table)
    for k in sorted({prof.depth, prof.mid, prof.small}, reverse=True):
        yield f"E4SRec_{k}", "e4srec", build_model(studies.e4srec(prof, dataset, k, seed), split, given)
    teacher = build_model(studies.e4srec(prof, dataset, prof.mid, seed), split, given)
    weights = {k: v.detach().clone() for k, v in teacher.named_parameters() if v.requires_grad}
    cfg = student_config(prof, dataset, seed)
    yield f"SLMRec_{prof.small}<-{prof.mid}", "slmrec", build_model(cfg, split, Artifacts(table, weights))


def paper_shape_models(prof: Profile, dataset: str, split, seed: int = 0, dtype: torch.dtype | None = None,
                       device: str | torch.device | None = None):
    """Yield (label, kind, teacher_cache, model) of the paper-shape table (`prof` from
    `paper_shape_profile`): E4SRec at depth / mid / small, then the student twice, with the live teacher
    (teacher_cache False) and with the cache (True; `prepare_training` is the caller's), each built by the
    builder from the study's config, backbones in `dtype` on `device` (timing-only builder arguments).
    The teacher's trained weights are the E4SRec_mid's own (random: only their shapes matter)."""
    from . import studies
    from .builders import Artifacts, build_model

    table = _random_table(prof, split, seed)
    given = Artifacts(item_embeddings=table)
    where = dict(backbone_dtype=dtype, backbone_device=device)
    weights = None
    for k in sorted({prof.depth, prof.mid, prof.small}, reverse=True):
        model = build_model(studies.e4srec(prof, dataset, k, seed), split, given, **where)
        if k == prof.mid:
            weights = {n: v.detach().clone() for n, v in model.named_parameters() if v.requires_grad}
        yield f"E4SRec_{k}", "e4srec", None, model
    for cached in (False, True):
        cfg = student_config(prof, dataset, seed, teacher_cache=cached)
        yield f"SLMRec_{prof.small}<-{prof.mid}", "slmrec", cached, build_model(cfg, split, Artifacts(table, weights),
                                                                                 **where)


def benchmark(profile: str, dataset: str | None = None, cfg: TimingConfig | None = None,
              progress: bool = True) -> pd.DataFrame:
    """Measure every model of `models_to_time`; tidy rows, one a (model, measure, repeat)."""
    from . import studies
    from .experiment import get_split

    prof = get_profile(profile)
    dataset = dataset or prof.datasets[0]
    cfg = cfg or settings_for(prof)
    split = get_split(studies.data(prof, dataset))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with _cpu_threads(device, cfg):
        return pd.DataFrame(_measure_all(prof, profile, dataset, split, cfg, device, progress))


@contextlib.contextmanager
def _cpu_threads(device: torch.device, cfg: TimingConfig):
    """torch's thread count set to `cfg.cpu_threads` while timing on a CPU, restored after."""
    threads = torch.get_num_threads()
    if device.type == "cpu" and cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _time_models(models: dict, inputs: torch.Tensor, batch: dict, cfg: TimingConfig, device: torch.device) -> dict:
    """{(measure, key): ms of each repeat}: every model's inference (ms a user), then its training step
    (ms), each measure's repeats interleaved over the models (see `timed`)."""
    seconds = timed({k: inference_call(x, inputs, cfg) for k, x in models.items()}, device, cfg.warmup, cfg.repeats)
    ms = {("inference_ms_per_user", k): [1000 * s / len(inputs) for s in v] for k, v in seconds.items()}
    seconds = timed({k: train_call(x, batch, cfg) for k, x in models.items()}, device, cfg.warmup, cfg.repeats)
    ms.update({("train_ms_per_step", k): [1000 * s for s in v] for k, v in seconds.items()})
    return ms


def _measure_all(prof: Profile, profile: str, dataset: str, split, cfg: TimingConfig, device: torch.device,
                 progress: bool) -> list[dict]:
    from .data import eval_inputs, train_examples
    from .experiment import device_name

    built = list(models_to_time(prof, dataset, split))  # all at once: their repeats are interleaved
    models = {label: model for label, _, model in built}
    kinds = {label: kind for label, kind, _ in built}
    max_len = next(iter(models.values())).max_len
    inputs = eval_inputs(split, "test", max_len)[0][: cfg.users]
    batch = {k: v[: cfg.train_batch_size] for k, v in train_examples(split, max_len, prof.llm_targets).items()}
    for model in models.values():
        model.to(device)
    if progress:
        print(f"[timing] {', '.join(models)} on {device_name()}: inference, then training", flush=True)
    ms = _time_models(models, inputs, batch, cfg, device)
    rows = []
    for (measure, label), values in ms.items():
        student = label.startswith("SLMRec")
        rows += [dict(profile=profile, dataset=dataset, backbone=prof.backbone, model=label, kind=kinds[label],
                      layers=prof.small if student else int(label.split("_")[1]),
                      teacher_layers=prof.mid if student else None, measure=measure, repeat=i, ms=v,
                      users=len(inputs), batch_size=cfg.batch_size, train_batch_size=cfg.train_batch_size,
                      device=device_name(), threads=torch.get_num_threads(), load_avg=os.getloadavg()[0],
                      settings=cfg.hash) for i, v in enumerate(values)]
    return rows


def benchmark_paper_shape(profile: str, dataset: str | None = None, cfg: TimingConfig | None = None,
                          progress: bool = True, backbone: str = PAPER_SHAPE,
                          depths: tuple[int, int, int] = PAPER_DEPTHS) -> pd.DataFrame:
    """Measure every model of `paper_shape_models` on `backbone` at `depths`; tidy rows, one a
    (model, teacher_cache, measure, repeat), with parameter counts (a tiny backbone and depths make the
    CPU test of this path)."""
    from . import studies
    from .experiment import get_split

    base = get_profile(profile)
    prof = paper_shape_profile(base, backbone, depths)
    dataset = dataset or base.datasets[0]
    cfg = cfg or paper_shape_settings(base)
    if cfg.cache_rows is None or cfg.cache_rows < cfg.train_batch_size:
        raise ValueError(f"the paper-shape table needs cache_rows >= train_batch_size ({cfg.train_batch_size}), "
                         f"got {cfg.cache_rows}")
    split = get_split(studies.data(prof, dataset))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with _cpu_threads(device, cfg):
        return pd.DataFrame(_measure_paper_shape(prof, profile, dataset, split, cfg, device, progress))


def _measure_paper_shape(prof: Profile, profile: str, dataset: str, split, cfg: TimingConfig, device: torch.device,
                         progress: bool) -> list[dict]:
    from .backbones import count_params
    from .data import eval_inputs, train_examples
    from .experiment import device_name, inference_params

    on_gpu = device.type == "cuda"
    dtype = torch.bfloat16 if cfg.bf16_weights and on_gpu else None
    if on_gpu:
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    built = list(paper_shape_models(prof, dataset, split, dtype=dtype, device=device if on_gpu else None))
    build_s = time.perf_counter() - t0
    models = {(label, cache): model.to(device) for label, _, cache, model in built}
    kinds = {label: kind for label, kind, _, _ in built}
    max_len = next(iter(models.values())).max_len
    inputs = eval_inputs(split, "test", max_len)[0][: cfg.users]
    examples = train_examples(split, max_len, prof.llm_targets)
    batch = {k: v[: cfg.train_batch_size] for k, v in examples.items()} | {"row": torch.arange(cfg.train_batch_size)}
    prepare_s = {}
    for (label, cache), model in models.items():
        if cache:  # the cache's one pass over the first cache_rows rows, as fit's prepare step runs it
            model.train()
            _sync(device)
            t1 = time.perf_counter()
            with _autocast(device, cfg.bf16):
                model.prepare_training({k: v[: cfg.cache_rows] for k, v in examples.items()}, device, planned_rows=None)
            _sync(device)
            prepare_s[label, cache] = time.perf_counter() - t1
            if getattr(model, "_teacher_cache", None) is None:
                raise RuntimeError(f"{label}: prepare_training built no teacher-state cache")
    names = {key: f"{key[0]}{'' if key[1] is None else f' teacher_cache={key[1]}'}" for key in models}
    if progress:
        print(f"[timing] {prof.backbone} ({_backbone_dtype(built[0][3])} weights, built in {build_s:.1f} s): "
              f"{', '.join(names.values())} on {device_name()}: inference, then training", flush=True)
    ms = _time_models(models, inputs, batch, cfg, device)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if on_gpu else None
    rows = []
    for (measure, key), values in ms.items():
        label, cache = key
        model, student = models[key], kinds[label] == "slmrec"
        rows += [dict(profile=profile, dataset=dataset, backbone=prof.backbone.partition(":")[0], scale="paper-shape",
                      model=label, kind=kinds[label], layers=prof.small if student else int(label.split("_")[1]),
                      teacher_layers=prof.mid if student else None, teacher_cache=cache, measure=measure, repeat=i,
                      ms=v, users=len(inputs), batch_size=cfg.batch_size, train_batch_size=cfg.train_batch_size,
                      inference_params=inference_params(model), trainable_params=count_params(model, trainable_only=True),
                      weights_dtype=_backbone_dtype(model),
                      cache_rows=cfg.cache_rows if cache else None, prepare_s=prepare_s.get(key),
                      peak_gpu_gb=peak, device=device_name(), torch=torch.__version__,
                      threads=torch.get_num_threads(), load_avg=os.getloadavg()[0], settings=cfg.hash)
                 for i, v in enumerate(values)]
    return rows


def _backbone_dtype(model) -> str:
    """The dtype of the (first) backbone's token embeddings, e.g. "bfloat16"."""
    weight = next(p for n, p in model.named_parameters() if n.endswith("embed_tokens.weight"))
    return str(weight.dtype).removeprefix("torch.")


# ------------------------------------------------------------------------------------------ files
def timing_path(profile: str, scale: str = "profile") -> Path:
    if scale not in FILES:
        raise ValueError(f"unknown timing scale {scale!r}; known: {', '.join(SCALES)}")
    return paths.results_dir(profile) / FILES[scale]


def load(profile: str, dataset: str | None = None, scale: str = "profile") -> pd.DataFrame:
    """The saved timing rows of a profile (of one dataset if given); an empty frame if none."""
    path = timing_path(profile, scale)
    frame = pd.read_csv(path) if path.exists() else pd.DataFrame()
    if dataset is not None and not frame.empty:
        frame = frame[frame.dataset == dataset].reset_index(drop=True)
    return frame


def load_or_measure(profile: str, dataset: str | None = None, force: bool = False,
                    scale: str = "profile") -> pd.DataFrame:
    """The timing rows of (profile, dataset) at the profile's settings: read back, or measured and saved.
    `scale`: "profile" (the profile's backbone and depths, `timing.csv`) or "paper-shape" (Llama-2-7B's
    shape at 32 / 8 / 4 layers, `timing_paper_shape.csv`).

    Raises if they are missing and the profile trains only on a GPU but none is present.
    """
    from .experiment import MissingResult
    from .util import atomic_write_text

    prof = get_profile(profile)
    dataset = dataset or prof.datasets[0]
    cfg = paper_shape_settings(prof) if scale == "paper-shape" else settings_for(prof)
    saved = load(profile, scale=scale)
    if not saved.empty and not force:
        mine = saved[(saved.dataset == dataset) & (saved.settings == cfg.hash)]
        if not mine.empty:
            return mine.reset_index(drop=True)
    if prof.gpu_required and not torch.cuda.is_available():
        raise MissingResult(f"no saved timing of {dataset!r} in {timing_path(profile, scale)}, and profile "
                            f"{profile!r} is timed only on a GPU: run `python -m slmrec_lib.timing --profile "
                            f"{profile} --dataset {dataset} --scale {scale}` on a GPU machine and copy the file here.")
    fresh = benchmark_paper_shape(profile, dataset, cfg) if scale == "paper-shape" else benchmark(profile, dataset, cfg)
    keep = saved[saved.dataset != dataset] if not saved.empty else saved
    atomic_write_text(pd.concat([keep, fresh], ignore_index=True).to_csv(index=False), timing_path(profile, scale))
    return fresh


def summary(timing: pd.DataFrame) -> pd.DataFrame:
    """Median ms per (model, measure) and the speed-up against the deepest E4SRec; per teacher_cache too
    where the rows have that column (the paper-shape table: "" for E4SRec, "True" / "False" for the student)."""
    keys = ["model", "layers"]
    if "teacher_cache" in timing.columns:
        timing = timing.assign(teacher_cache=timing.teacher_cache.map(lambda v: "" if pd.isna(v) else str(bool(v))))
        keys.append("teacher_cache")
    med = timing.groupby(keys + ["measure"], sort=False)["ms"].median().reset_index()
    wide = med.pivot_table(index=keys, columns="measure", values="ms", sort=False).reset_index()
    e4 = wide[wide.model.str.startswith("E4SRec_")]
    deepest = e4.loc[e4.layers.idxmax()]
    for measure in MEASURES:
        wide[f"{measure.split('_')[0]}_speedup"] = deepest[measure] / wide[measure]
    wide.columns.name = None
    return wide


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--dataset", default=None, help="default: the profile's first dataset")
    parser.add_argument("--force", action="store_true", help="measure again even if saved")
    parser.add_argument("--scale", choices=SCALES, default="profile",
                        help="profile: the profile's backbone (timing.csv); paper-shape: Llama-2-7B's shape, random "
                             "bf16 weights, 32 / 8 / 4 layers (timing_paper_shape.csv)")
    args = parser.parse_args(argv)
    frame = load_or_measure(args.profile, args.dataset, force=args.force, scale=args.scale)
    print(summary(frame).to_string(index=False))
    print(f"saved: {timing_path(args.profile, args.scale)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
