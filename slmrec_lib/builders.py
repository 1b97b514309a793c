"""RunConfig -> model. A builder never trains: the runner (`experiment.run`) trains a run's dependencies
first and hands over what they produced (`Artifacts`: the item embeddings of the SASRec run, the
teacher's trained weights).

Seeding: backbones are loaded with the global RNG set aside (a backbone cached in the process and one
built afresh then leave the same RNG state), and the trainable parts are initialised right after
`torch.manual_seed(cfg.seed)`, so a model's initial weights depend on its config and seed alone,
whatever ran before in the process.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .config import RunConfig
from .data import Split


@dataclass
class Artifacts:
    """What a run's dependencies produced, as the builder needs it."""

    item_embeddings: torch.Tensor | None = None  # [n_items + 1, d0] of the SASRec run `model.item_run`
    teacher_weights: dict[str, torch.Tensor] | None = None  # trainable weights of the offline teacher run


class BuildError(RuntimeError):
    pass


def load_backbone_spec(spec: str, layers: int | None = None, dtype: torch.dtype | None = None,
                       device: str | torch.device | None = None):
    """`backbones.load_backbone` with only the first `layers` decoder layers allocated, plus
    "tiny:<layers>" (and "tiny-random:<layers>") for a deeper tiny random model (smoke runs); the
    global RNG is left as it was.

    A random spec that names its dtype (`llama2-7b-shape:0:bf16`) is built on the GPU when there is one
    (seconds for 7B parameters, where a CPU init takes minutes). `dtype` / `device` are for the timing
    benchmark only, whose models are not runs: they set the backbone's weights dtype and where it is built
    (a run's backbone dtype is the spec's, so that it is in the run's hash)."""
    from . import backbones

    with torch.random.fork_rng(devices=[]):
        if spec.startswith("tiny:"):
            return backbones.tiny_backbone(dtype or torch.float32, num_hidden_layers=int(spec.split(":", 1)[1]))
        if spec.startswith("tiny-random:"):  # the smoke profile's stand-in for a random-weight control
            return backbones.tiny_backbone(dtype or torch.float32, seed=1, num_hidden_layers=int(spec.split(":", 1)[1]))
        if device is None and spec.partition(":")[0] in backbones.RANDOM_SPECS \
                and backbones.parse_random_spec(spec)[2] is not None and torch.cuda.is_available():
            device = "cuda"
        return backbones.load_backbone(spec, layers=layers, dtype=dtype or torch.float32, device=device or "cpu")


def check_backbone(cfg: RunConfig) -> None:
    """BuildError, before anything is trained or loaded, if the backbone of an LLM run (or P5) is not one
    `load_backbone_spec` can load: a `backbones` spec, "tiny:<layers>" / "tiny-random:<layers>", or a
    directory holding a Hugging Face model."""
    from . import backbones

    spec = cfg.model.backbone
    if spec is None:
        return
    name, _, depth = spec.partition(":")
    if name in ("tiny", "tiny-random") and depth:
        if not depth.isdigit() or int(depth) < 1:
            raise BuildError(f"{cfg.label} ({cfg.hash}): backbone {spec!r} needs a positive layer count after ':'")
        return
    try:
        backbones.check_spec(spec)
    except ValueError as exc:
        raise BuildError(f"{cfg.label} ({cfg.hash}): {exc}") from None


def _need(value, what: str, cfg: RunConfig):
    if value is None:
        raise BuildError(f"{cfg.label} ({cfg.hash}) needs {what}; the runner hands it over from the dependency run")
    return value


def build_model(cfg: RunConfig, split: Split, artifacts: Artifacts | None = None, *,
                backbone_dtype: torch.dtype | None = None, backbone_device: str | torch.device | None = None):
    """The untrained model of `cfg` (an offline student with its trained teacher loaded), initialised
    from `cfg.seed`. `backbone_dtype` / `backbone_device`: the timing benchmark's (see
    `load_backbone_spec`); the runner never passes them."""
    artifacts = artifacts or Artifacts()
    where = dict(dtype=backbone_dtype, device=backbone_device)
    kind, params = cfg.model.kind, cfg.model.params
    torch.manual_seed(cfg.seed)
    if kind == "popularity":
        from .models.popularity import Popularity

        return Popularity.from_sequences(split.train, split.n_items)
    if kind == "sasrec":
        from .models.sasrec import SASRec

        return SASRec(split.n_items, params)
    if kind == "gru4rec":
        from .models.gru4rec import GRU4Rec

        return GRU4Rec(split.n_items, params)
    if kind == "bert4rec":
        from .models.bert4rec import BERT4Rec

        return BERT4Rec(split.n_items, params)
    if kind == "e4srec":
        table = _need(artifacts.item_embeddings, "the item embeddings", cfg)
        backbone, tokenizer = load_backbone_spec(cfg.model.backbone, params.n_layers, **where)
        torch.manual_seed(cfg.seed)
        from .models.llmrec import LLMRec

        return LLMRec(backbone, tokenizer, table, params)
    if kind == "slmrec":
        from .models.llmrec import LLMRec
        from .models.slmrec import SLMRecStudent

        table = _need(artifacts.item_embeddings, "the item embeddings", cfg)
        distill = cfg.model.distill
        student_backbone = load_backbone_spec(cfg.model.backbone, params.n_layers, **where)
        teacher_backbone = load_backbone_spec(cfg.model.backbone, cfg.model.teacher_layers, **where)
        torch.manual_seed(cfg.seed)
        student = LLMRec(*student_backbone, table, params)
        teacher = LLMRec(*teacher_backbone, table, replace(params, n_layers=cfg.model.teacher_layers))
        if distill.mode == "offline":
            load_trainable(teacher, _need(artifacts.teacher_weights, "the teacher's weights", cfg),
                           f"teacher run {cfg.model.teacher.hash}")
        return SLMRecStudent(student, teacher, distill)
    if kind == "p5":
        from .models.p5 import P5Rec

        backbone = load_backbone_spec(cfg.model.backbone, params.n_layers)
        torch.manual_seed(cfg.seed)
        return P5Rec(params, split.n_items, split.train, backbone=backbone)
    raise BuildError(f"unknown model kind {kind!r}")


def load_trainable(model: torch.nn.Module, weights: dict[str, torch.Tensor], what: str) -> None:
    """Load saved trainable weights into `model`: every trainable parameter must be in `weights` and
    every saved weight must belong to the model (a damaged or foreign file is an error, never a model
    left half initialised)."""
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    state = set(model.state_dict())
    missing, unexpected = sorted(trainable - set(weights)), sorted(set(weights) - state)
    if missing or unexpected:
        raise BuildError(f"{what}: saved weights do not match the model: missing {missing[:3]} "
                         f"({len(missing)} in all), unexpected {unexpected[:3]} ({len(unexpected)} in all). "
                         "The weight file is damaged or from another config: move that run folder away to "
                         "train it again.")
    model.load_state_dict(weights, strict=False)  # the frozen backbone weights come from the backbone
