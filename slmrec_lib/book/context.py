"""What a notebook runs on: the checked parameters, the profile object and where outputs go.

Each notebook's first code cell imports the book and takes a snapshot of its globals
(`_before = set(globals())`); the `parameters` cell and papermill's injected cell follow; then
`book.start(profile, dataset, names=set(globals()) - _before)` checks what those two cells defined:
a name that is no parameter of the book (`-p dataste beauty`) is an error, not a silent default.
"""

from __future__ import annotations

import platform
import warnings
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..profiles import Profile, get_profile

# every parameter a notebook of the book declares in its `parameters` cell
PARAMETERS = {
    "profile": "smoke | cpu | gpu | paper (slmrec_lib/profiles.py)",
    "dataset": "None (the profile's first) or a dataset name or file",
    "with_p5": "include the P5 baseline (02, 03, 07)",
    "force_timing": "measure the timing benchmark again (03)",
}


# the tidy columns that make one model: its seeds are rows with all of these equal
GROUP_COLUMNS = ("dataset", "kind", "role", "layers", "teacher_layers", "backbone", "targets", "loss", "negatives",
                 "w_cos", "w_norm", "w_ms", "norm_squared", "blocks", "mode", "train_item_table", "item_run", "control")

class BookError(ValueError):
    """A notebook parameter or a table request is wrong; the message names the known values."""


@dataclass(frozen=True)
class Book:
    """What a notebook runs on: the Profile object (passed to every study and run, never re-resolved by
    name, so an overridden profile reaches the runs) and the dataset."""

    profile: Profile
    dataset: str

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def backbone(self) -> str:
        return self.profile.backbone

    @property
    def slug(self) -> str:
        """The dataset as a file-name part."""
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(self.dataset).name)

    def caption(self, what: str, seeds: str = "", users: str = "") -> str:
        """A figure title that says what produced it: profile, data, backbone, and seeds / users if given."""
        tail = "".join(f", {x}" for x in (seeds, users) if x)
        return f"{what}\nprofile {self.name}, dataset {self.dataset}, backbone {self.backbone}{tail}"

    def figure_path(self, name: str) -> Path:
        folder = paths.figures_dir(self.name)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{name}-{self.slug}.png"

    def results_path(self, name: str) -> Path:
        folder = paths.results_dir(self.name)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def depth(self, role: str | int | None) -> int | None:
        """A depth by its role in the paper's design: "depth" (E4SRec*), "mid" (the 8-layer teacher),
        "small" (the 4-layer student), or a number as it is."""
        if role is None or isinstance(role, int):
            return role
        if role not in ("depth", "mid", "small"):
            raise BookError(f"unknown depth role {role!r}: use 'depth', 'mid', 'small' or a number")
        return getattr(self.profile, role)


def known_datasets() -> list[str]:
    from ..data import known_datasets as data_known

    return [d for d in data_known() if not d.startswith("<")]


def check_parameters(names) -> None:
    """Raise BookError if `names` (what a notebook's parameters cell and papermill's injected cell
    defined) holds a name that is no parameter of the book. Names starting with "_" are the kernel's."""
    unknown = sorted(n for n in set(names) if not n.startswith("_") and n not in PARAMETERS)
    if unknown:
        known = "; ".join(f"{k} ({v})" for k, v in PARAMETERS.items())
        raise BookError(f"unknown notebook parameter(s) {unknown}: check the spelling of the `-p NAME VALUE` "
                        f"given to papermill. The book's parameters: {known}.")


def quiet_known_noise() -> None:
    """Filter the warnings that say nothing about the runs and that a reader takes for errors."""
    # transformers prints it for every LoRA model built (peft asks about gradient checkpointing)
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def start(profile: str | Profile, dataset: str | None = None, quiet: bool = False, names=None) -> Book:
    """Check a notebook's parameters and say what it runs on; raise naming the known values if wrong.
    `names`: the names the parameters cells defined (see the module docstring), checked if given."""
    if names is not None:
        check_parameters(names)
    if not isinstance(profile, (str, Profile)):
        raise BookError(f"profile must be a name (str), got {profile!r}")
    prof = get_profile(profile)  # ProfileError names the known profiles
    dataset = dataset or prof.datasets[0]
    if not isinstance(dataset, str):
        raise BookError(f"dataset must be a name or a file path (str), got {dataset!r}")
    is_file = Path(dataset).expanduser().is_file()
    if dataset not in prof.datasets and dataset not in known_datasets() and not is_file:
        raise BookError(
            f"unknown dataset {dataset!r}. Profile {prof.name!r} runs {', '.join(prof.datasets)}; other known "
            f"datasets: {', '.join(known_datasets())}; or give the path of an existing file."
        )
    book = Book(prof, dataset)
    quiet_known_noise()
    if not quiet:
        from ..experiment import device_name, git_sha

        print(f"profile : {prof.description}\ndataset : {dataset}\nbackbone: {prof.backbone}\n"
              f"device  : {device_name()} (python {platform.python_version()}, git {git_sha()})\n"
              f"results : {paths.results_dir(prof.name)}\nfigures : {paths.figures_dir(prof.name)}")
    return book
