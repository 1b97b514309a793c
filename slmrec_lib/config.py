"""Run configs: typed, resolved, and named by the hash of their resolved form.

A run is a `RunConfig`: the data (`DataConfig`), the model (`ModelConfig`: its kind, the model's own
config dataclass, the training rows, the backbone and the runs it depends on), the training
(`training.TrainConfig`), the evaluation protocols, the seed and the evaluation users. Every part is a
dataclass with every field filled (defaults included), so a config has one resolved form and one
hash whatever was written out or omitted when it was made:

- `canonical(cfg)` is that resolved form as plain JSON: every field of every dataclass except the
  execution-only ones (`util.EXECUTION` field metadata: progress bars, scoring batch sizes, chunk
  sizes, caches, which change how work is done and not what is computed), dependencies replaced by
  their own hashes, and the dataset's content digest (`data.fingerprint`: an edited data file makes
  new runs). `cfg.hash` is the first 12 hex digits of its sha256.
- `to_dict(cfg)` is what a run folder's `config.json` holds: the whole config, execution fields and
  dependencies inline, plus the hash; `from_dict` reads it back, also from the layout this book wrote
  before configs were typed (dict params, dependencies as dict fields), which `slmrec_lib.migrate` uses
  to re-key saved runs.
- `columns(cfg)` are the tidy columns every result row carries (kind, layers, loss, variant weights,
  blocks, mode, backbone, the dependencies' hashes, ...): tables, claims and figures select runs by
  them. `label(cfg)` is the display name ("SLMRec_4<-8 +D_norm blocks=1"), built here and only here,
  for display only.

Dependencies: an LLM run reads the item embeddings of a trained SASRec run (`model.item_run`), an
offline student the weights of a trained teacher run (`model.teacher`). `dependencies(cfg)` lists them
in the order they must train; the runner (`experiment.run`) trains them first.
"""

from __future__ import annotations

import hashlib
import json
import typing
from dataclasses import dataclass, fields, is_dataclass, replace
from functools import lru_cache
from pathlib import Path

from .evaluation import EvalProtocol
from .models.bert4rec import BERT4RecConfig
from .models.gru4rec import GRU4RecConfig
from .models.llmrec import LLMRecConfig
from .models.p5 import P5Config
from .models.sasrec import SASRecConfig
from .models.slmrec import DistillConfig
from .training import TrainConfig
from .util import execution_fields

MODEL_KINDS = ("popularity", "sasrec", "gru4rec", "bert4rec", "e4srec", "slmrec", "p5")
LLM_KINDS = ("e4srec", "slmrec", "p5")
TARGETS = ("all", "last", "prefixes")
# the config dataclass of each model kind (popularity has no settings)
PARAMS = {"popularity": None, "sasrec": SASRecConfig, "gru4rec": GRU4RecConfig, "bert4rec": BERT4RecConfig,
          "e4srec": LLMRecConfig, "slmrec": LLMRecConfig, "p5": P5Config}
DISPLAY = {"popularity": "Popularity", "sasrec": "SASRec", "gru4rec": "GRU4Rec", "bert4rec": "BERT4Rec"}
HASH_LENGTH = 12


class ConfigError(ValueError):
    """A config cannot be built as asked; the message names the setting and the known values."""


# ------------------------------------------------------------------------------------------ configs
@dataclass(frozen=True)
class DataConfig:
    dataset: str = "synthetic"  # a name from data.known_datasets() or a file path
    preprocess: str = "paper"  # "paper" | "official_code": filtering of ratings files
    max_users: int | None = None  # keep a seeded random subset of this many users (None: all)
    subset_seed: int = 0  # seed of that subset

    def __post_init__(self):
        if self.preprocess not in ("paper", "official_code"):
            raise ConfigError(f"unknown preprocessing {self.preprocess!r}: use 'paper' or 'official_code'")


@dataclass(frozen=True)
class ModelConfig:
    kind: str  # one of MODEL_KINDS
    params: typing.Any = None  # the model's own config dataclass (PARAMS[kind]); None for popularity
    targets: str = "all"  # training rows: "all" | "last" | "prefixes" (data.train_examples)
    backbone: str | None = None  # LLM kinds: "tiny[:layers]", "smollm2", ... or an HF folder; None otherwise
    item_run: RunConfig | None = None  # e4srec / slmrec: the SASRec run whose item embeddings they read
    teacher_layers: int | None = None  # slmrec: depth of the teacher
    teacher: RunConfig | None = None  # offline slmrec: the trained teacher run (None online)
    distill: DistillConfig | None = None  # slmrec: the distillation settings

    def __post_init__(self):
        if self.kind not in MODEL_KINDS:
            raise ConfigError(f"unknown model kind {self.kind!r}; known: {', '.join(MODEL_KINDS)}")
        want = PARAMS[self.kind]
        if want is None and self.params is not None:
            raise ConfigError(f"{self.kind} has no settings, got {self.params!r}")
        if want is not None and not isinstance(self.params, want):
            raise ConfigError(f"{self.kind}: params must be a {want.__name__}, got {type(self.params).__name__}")
        if self.targets not in TARGETS:
            raise ConfigError(f"unknown training targets {self.targets!r}; known: {', '.join(TARGETS)}")
        if (self.kind in LLM_KINDS) != (self.backbone is not None):
            raise ConfigError(f"{self.kind}: a backbone is set for the LLM kinds {LLM_KINDS} and only for them")
        if self.kind == "p5" and self.params.backbone != self.backbone:
            raise ConfigError(f"p5: params.backbone {self.params.backbone!r} differs from backbone {self.backbone!r}")
        if self.kind in ("e4srec", "slmrec") and self.item_run is None:
            raise ConfigError(f"{self.kind} reads a trained SASRec's item embeddings: set item_run")
        if self.item_run is not None and self.item_run.model.kind != "sasrec":
            raise ConfigError(f"item_run must be a SASRec run, got {self.item_run.model.kind}")
        if self.kind == "slmrec":
            if self.distill is None or self.teacher_layers is None:
                raise ConfigError("slmrec needs distill (a DistillConfig) and teacher_layers")
            if (self.distill.mode == "offline") != (self.teacher is not None):
                raise ConfigError("slmrec: an offline student names its trained teacher run, an online one none")
            if self.teacher is not None and (self.teacher.model.kind != "e4srec"
                                             or self.teacher.model.layers != self.teacher_layers):
                raise ConfigError(f"slmrec: the teacher must be an E4SRec run of {self.teacher_layers} layers")
        elif self.distill is not None or self.teacher is not None or self.teacher_layers is not None:
            raise ConfigError(f"{self.kind}: distill / teacher settings belong to slmrec runs only")

    @property
    def layers(self) -> int | None:
        """Decoder layers kept (LLM kinds) or Transformer / GRU layers (baselines)."""
        if self.params is None:
            return None
        return getattr(self.params, "n_layers", None) if self.kind in LLM_KINDS else getattr(self.params, "layers", None)


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig
    model: ModelConfig
    train: TrainConfig | None = None  # None only for popularity (nothing to train); its seed is `seed`
    protocols: tuple[EvalProtocol, ...] = (EvalProtocol("sampled", 999, 0),)  # the first selects the weights
    seed: int = 0  # seeds model initialisation, shuffling and dropout
    eval_users: int | None = None  # evaluate on a seeded subset of this many users (None: all)
    role: str = ""  # display only, e.g. "item table" (never part of the hash)

    def __post_init__(self):
        if (self.model.kind == "popularity") != (self.train is None):
            raise ConfigError("a run has a TrainConfig unless it is popularity (which trains nothing)")
        if self.train is not None and self.train.seed != self.seed:  # one seed: the run's
            object.__setattr__(self, "train", replace(self.train, seed=self.seed))
        protocols = tuple(self.protocols)
        if not protocols or not all(isinstance(p, EvalProtocol) for p in protocols):
            raise ConfigError(f"protocols must be a non-empty tuple of EvalProtocol, got {self.protocols!r}")
        object.__setattr__(self, "protocols", protocols)

    @property
    def hash(self) -> str:
        if "_hash" not in self.__dict__:  # a frozen config's hash never changes: computed once
            object.__setattr__(self, "_hash", config_hash(self))
        return self.__dict__["_hash"]

    @property
    def label(self) -> str:
        return label(self)

    @property
    def eval_protocols(self) -> list[EvalProtocol]:
        return list(self.protocols)


# ------------------------------------------------------------------------------------------ resolved form
def _plain(obj):
    """A config value as JSON: dataclasses as dicts without their execution fields, runs by hash."""
    if isinstance(obj, RunConfig):
        return config_hash(obj)
    if is_dataclass(obj):
        skip = execution_fields(obj)
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj) if f.name not in skip}
    if isinstance(obj, (tuple, list)):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise ConfigError(f"a config holds a value JSON cannot name: {obj!r}")


def canonical(cfg: RunConfig) -> dict:
    """The resolved form that names a run (see the module docstring)."""
    skip = {"role", *execution_fields(cfg)}
    out = {f.name: _plain(getattr(cfg, f.name)) for f in fields(cfg) if f.name not in skip}
    out["data_content"] = data_content(cfg.data)
    return out


def config_hash(cfg: RunConfig) -> str:
    blob = json.dumps(canonical(cfg), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:HASH_LENGTH]


def training_key(cfg: RunConfig) -> str:
    """The hash of what a run trains: its config with only the first protocol (the one its validation
    uses). Runs with one key train the same weights and differ only in how they are scored afterwards."""
    return replace(cfg, protocols=cfg.protocols[:1]).hash


@lru_cache(maxsize=64)
def data_content(data: DataConfig) -> str:
    """The sha256 of the dataset's source files (`data.fingerprint`), looked up once per process.

    A named dataset with a published sha256 is named by it without reading the file (the loader accepts
    no other bytes), so saved results of Beauty and Sports are found on a machine without the data.
    A dataset whose files are not on this machine gets "unavailable:<name>": its runs can be listed
    (as not done) but not trained, since training loads the data and says where to put the file.
    """
    from . import data as data_mod, paths

    name = data.dataset
    src = data_mod.DATASETS.get(name)
    if src is not None and len(src.sha256) == 1 and src.sha256[0] is not None:
        return src.sha256[0]
    if name != "synthetic":
        if name.startswith("amazon2018:") or src is not None:
            files = [paths.data_dir() / rel for rel in data_mod._source(name).files]
        else:
            files = [Path(name).expanduser()]
        if not all(f.is_file() for f in files):
            return f"unavailable:{name}"
    return data_mod.fingerprint(name)


def with_execution(cfg: RunConfig, **params) -> RunConfig:
    """`cfg` with other execution settings of its model's params (e.g. P5's `chunk_rows`): the same
    run and hash. A setting that is not execution-only is an error."""
    allowed = execution_fields(cfg.model.params) if cfg.model.params is not None else frozenset()
    if unknown := set(params) - allowed:
        raise ConfigError(f"{sorted(unknown)} are not execution settings of {cfg.model.kind} ({sorted(allowed)})")
    out = replace(cfg, model=replace(cfg.model, params=replace(cfg.model.params, **params)))
    assert out.hash == cfg.hash
    return out


def dependencies(cfg: RunConfig) -> list[RunConfig]:
    """The runs `cfg` reads, each after its own dependencies, without repeats."""
    out: list[RunConfig] = []
    for dep in (cfg.model.item_run, cfg.model.teacher):
        if dep is None:
            continue
        for d in [*dependencies(dep), dep]:
            if d.hash not in {o.hash for o in out}:
                out.append(d)
    return out


# ------------------------------------------------------------------------------------------ config.json
def to_dict(cfg: RunConfig) -> dict:
    """What config.json holds: every field (execution ones too), dependencies inline, and the hash."""

    def full(obj):
        if isinstance(obj, RunConfig):
            return to_dict(obj)
        if is_dataclass(obj):
            return {f.name: full(getattr(obj, f.name)) for f in fields(obj)}
        if isinstance(obj, (tuple, list)):
            return [full(v) for v in obj]
        return obj

    out = {f.name: full(getattr(cfg, f.name)) for f in fields(cfg)}
    out["hash"] = cfg.hash
    out["format"] = 2
    return out


def build(cls, values: dict | None, what: str = ""):
    """A config dataclass from a dict: an unknown key is an error, lists become tuples where the
    field's default is a tuple."""
    values = dict(values or {})
    known = {f.name: f for f in fields(cls)}
    if unknown := set(values) - set(known):
        raise ConfigError(f"{what or cls.__name__}: unknown setting(s) {sorted(unknown)}; known: {sorted(known)}")
    for name, value in values.items():
        if isinstance(value, list) and isinstance(known[name].default, tuple):
            values[name] = tuple(value)
    return cls(**values)


def from_dict(d: dict) -> RunConfig:
    """A RunConfig from config.json, of this layout (`format` 2) or the one before typed configs."""
    if d.get("format") != 2:  # keys besides the fields (hash, format, previous_hash) are records
        return _from_legacy(d)
    m = d["model"]
    kind = m["kind"]
    params = None if PARAMS[kind] is None else build(PARAMS[kind], m["params"], kind)
    model = ModelConfig(
        kind=kind, params=params, targets=m["targets"], backbone=m["backbone"],
        item_run=from_dict(m["item_run"]) if m.get("item_run") else None,
        teacher_layers=m.get("teacher_layers"),
        teacher=from_dict(m["teacher"]) if m.get("teacher") else None,
        distill=build(DistillConfig, m["distill"]) if m.get("distill") is not None else None,
    )
    cfg = RunConfig(build(DataConfig, d["data"]), model,
                    train=build(TrainConfig, d["train"]) if d.get("train") is not None else None,
                    protocols=tuple(build(EvalProtocol, p) for p in d["protocols"]), seed=d["seed"],
                    eval_users=d.get("eval_users"), role=d.get("role", ""))
    return cfg


def _from_legacy(d: dict) -> RunConfig:
    """The config.json this book wrote before configs were typed: model params, the item table and
    the teacher as dicts; hashed before resolution. Read as the run it describes."""
    m, kind, seed = d["model"], d["model"]["kind"], d["seed"]
    data = build(DataConfig, d["data"])
    protocols = tuple(EvalProtocol(k, n, s) for k, n, s in d["protocols"])
    eval_users = d.get("eval_users")
    train = None if kind == "popularity" else build(TrainConfig, dict(d.get("train", {}), seed=seed))
    layers = m.get("layers")
    role = "item table" if d.get("label") == "SASRec item table" else ""
    if kind == "popularity":
        return RunConfig(data, ModelConfig("popularity"), None, protocols, seed, eval_users, role)
    if kind in ("sasrec", "gru4rec", "bert4rec"):
        model = ModelConfig(kind, build(PARAMS[kind], m.get("params", {})), targets=m.get("targets", "all"))
        return RunConfig(data, model, train, protocols, seed, eval_users, role)
    if kind == "p5":
        params = build(P5Config, dict(m.get("params", {}), backbone=m["backbone"], n_layers=layers))
        model = ModelConfig("p5", params, targets=m.get("targets", "last"), backbone=m["backbone"])
        return RunConfig(data, model, train, protocols, seed, eval_users, role)
    table = m.get("item_table", {})
    item_run = RunConfig(data, ModelConfig("sasrec", build(SASRecConfig, table.get("params", {})), targets="all"),
                         build(TrainConfig, dict(table.get("train", {}), seed=0)), protocols, 0, eval_users,
                         "item table")
    llm = build(LLMRecConfig, dict(m.get("params", {}), n_layers=layers))
    if kind == "e4srec":
        model = ModelConfig("e4srec", llm, targets=m.get("targets", "last"), backbone=m["backbone"], item_run=item_run)
        return RunConfig(data, model, train, protocols, seed, eval_users, role)
    distill = build(DistillConfig, m.get("distill", {}))
    teacher = None
    if distill.mode == "offline":
        t_model = ModelConfig("e4srec", replace(llm, n_layers=m["teacher_layers"]), targets=m.get("targets", "last"),
                              backbone=m["backbone"], item_run=item_run)
        teacher = RunConfig(data, t_model, build(TrainConfig, dict(m.get("teacher_train", {}), seed=seed)),
                            protocols, seed, eval_users)
    model = ModelConfig("slmrec", llm, targets=m.get("targets", "last"), backbone=m["backbone"], item_run=item_run,
                        teacher_layers=m["teacher_layers"], teacher=teacher, distill=distill)
    return RunConfig(data, model, train, protocols, seed, eval_users, role)


# ------------------------------------------------------------------------------------------ rows, labels
def _distill_suffix(d: DistillConfig) -> str:
    defaults = DistillConfig()
    out = (" +D_norm" if d.w_norm > 0 else "") + (" +L_ms" if d.w_ms > 0 else "")
    for f in sorted(fields(d), key=lambda f: f.name):
        value = getattr(d, f.name)
        if f.name in execution_fields(d) or value == getattr(defaults, f.name):
            continue
        if f.name in ("w_norm", "w_ms") and value == 0:
            continue
        out += f" {f.name}={value}"
    return out


def _llm_suffix(cfg: RunConfig) -> str:
    """What sets an LLM run apart from the book's main setting, for its label."""
    m, out = cfg.model, ""
    if m.backbone and "random" in m.backbone:
        out += " random-weights"
    if m.kind != "p5" and m.targets != "last":
        out += f" targets={m.targets}"
    if getattr(m.params, "train_item_table", False):
        out += " +trainable-table"
    table = m.item_run.model if m.item_run is not None else None
    if table is not None and (table.params.loss != "ce" or table.targets != "all"):
        out += f" table={table.params.loss}-{table.targets}"  # reads another SASRec rung's item embeddings
    return out


def label(cfg: RunConfig) -> str:
    """The display name of a run (the paper's names at our depths); see the module docstring."""
    m = cfg.model
    if m.kind in DISPLAY:
        name = DISPLAY[m.kind]
        if m.kind == "sasrec":  # the ladder's rungs (studies.RUNGS): what differs from the book's SASRec
            name += (" BCE" if m.params.loss == "bce" else "") + ("" if m.targets == "all" else f" targets={m.targets}")
        return f"{name} {cfg.role}" if cfg.role else name
    if m.kind == "e4srec":
        return f"E4SRec_{m.layers}{_llm_suffix(cfg)}"
    if m.kind == "p5":
        return f"P5_{m.layers}{_llm_suffix(cfg)}"
    return f"SLMRec_{m.layers}<-{m.teacher_layers}{_distill_suffix(m.distill)}{_llm_suffix(cfg)}"


def _loss(m: ModelConfig) -> str:
    if m.kind == "popularity":
        return "none"
    if m.kind == "bert4rec":
        return "cloze-ce"
    return getattr(m.params, "loss", "ce")


def columns(cfg: RunConfig) -> dict:
    """The tidy columns of every result row of `cfg`, from its resolved config."""
    m = cfg.model
    d = m.distill
    return dict(
        label=label(cfg), kind=m.kind, role=cfg.role, layers=m.layers, teacher_layers=m.teacher_layers,
        backbone=m.backbone or "", targets=m.targets, loss=_loss(m),
        negatives=getattr(m.params, "negatives", "") if m.kind == "sasrec" else "",
        w_cos=d.w_cos if d else None, w_norm=d.w_norm if d else None, w_ms=d.w_ms if d else None,
        norm_squared=d.norm_squared if d else None, blocks=d.blocks if d else None, mode=d.mode if d else "",
        item_run=m.item_run.hash if m.item_run else "", teacher_run=m.teacher.hash if m.teacher else "",
        train_item_table=bool(getattr(m.params, "train_item_table", False)),
        data_content=data_content(cfg.data)[:HASH_LENGTH],
    )
