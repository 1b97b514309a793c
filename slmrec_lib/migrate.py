"""Re-key saved runs to the hash of their resolved config, without training anything.

A run folder is named by its config's hash (`config.config_hash`). When the resolved form changes
(a new setting with a default that keeps the old behaviour, a field marked execution-only, the layout
of config.json), every saved run is still described by its config.json; this reads each one, resolves
it with today's configs, renames the folder to today's hash, rewrites config.json in today's layout
(keeping the old hash as `previous_hash`) and writes the tidy columns of today's rows into rows.csv
(the metric values are copied as they are).

    python -m slmrec_lib.migrate --profile cpu gpu          # re-key results/cpu and results/gpu
    python -m slmrec_lib.migrate --profile gpu --dry-run    # say what would change

Two folders that resolve to one hash are an error naming both (nothing is renamed then): they would be
two trainings of one run, and a person decides which to keep. tests/test_config.py checks that every
committed run folder is named by its config's hash, so a change that needs this and did not run it
fails there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd

from . import config, paths
from .experiment import TEXT_COLUMNS
from .util import atomic_write_text

ROW_KEYS = ("run_id", "config_hash")


def plan_moves(runs: Path) -> list[tuple[Path, config.RunConfig]]:
    """Every run folder under `runs` with its config read and resolved; raises on a collision."""
    out, by_hash = [], {}
    for folder in sorted(p for p in runs.iterdir() if (p / "config.json").exists()):
        cfg = config.from_dict(json.loads((folder / "config.json").read_text()))
        if cfg.hash in by_hash:
            raise config.ConfigError(f"{folder} and {by_hash[cfg.hash]} resolve to the same run {cfg.hash}; keep one "
                                     "of them (move the other away) and run the migration again")
        by_hash[cfg.hash] = folder
        out.append((folder, cfg))
    return out


STAGED = ".migrating-"  # prefix of a folder between the two passes of `migrate`


def migrate_folder(folder: Path, cfg: config.RunConfig, profile: str) -> Path:
    """Rename `folder` to `cfg.hash`, rewrite config.json and rows.csv; returns the new folder."""
    saved = json.loads((folder / "config.json").read_text())
    old = saved.get("hash") or folder.name.removeprefix(STAGED)
    target = folder.parent / cfg.hash
    if target != folder:
        if target.exists():
            raise config.ConfigError(f"cannot move {folder} to {target}: that folder exists")
        os.replace(folder, target)
    record = config.to_dict(cfg)
    if old != cfg.hash:
        record["previous_hash"] = old
    elif "previous_hash" in saved:
        record["previous_hash"] = saved["previous_hash"].removeprefix(STAGED)
    atomic_write_text(json.dumps(record, indent=2), target / "config.json")
    rows_path = target / "rows.csv"
    if rows_path.exists() and rows_path.stat().st_size > 0:
        rows = pd.read_csv(rows_path, dtype=TEXT_COLUMNS)  # hashes and shas are text, not numbers
        tidy = config.columns(cfg)
        rows = rows.assign(run_id=f"{profile}-{cfg.hash}", config_hash=cfg.hash, **tidy)
        if "model" in rows.columns and "label" in rows.columns:  # the label the run was trained under
            rows["label"] = rows["model"]
        atomic_write_text(rows.to_csv(index=False), rows_path)
    return target


def migrate(profile: str, dry_run: bool = False) -> list[tuple[str, str]]:
    """Re-key every run of a profile; returns (old folder name, new hash) for the folders that moved."""
    runs = paths.results_dir(profile) / "runs"
    if not runs.is_dir():
        return []
    moves = plan_moves(runs)
    changed = [(folder.name, cfg.hash) for folder, cfg in moves if folder.name != cfg.hash]
    if not dry_run:
        # two passes, so that a folder may take a name another folder gives up
        staged = []
        for folder, cfg in moves:
            tmp = folder.with_name(f"{STAGED}{folder.name}")
            os.replace(folder, tmp)
            staged.append((tmp, cfg))
        for tmp, cfg in staged:
            migrate_folder(tmp, cfg, profile)
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", nargs="+", required=True)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    for profile in args.profile:
        try:
            changed = migrate(profile, args.dry_run)
        except config.ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        verb = "would move" if args.dry_run else "moved"
        print(f"{profile}: {verb} {len(changed)} run folder(s)")
        for old, new in changed:
            print(f"  {old} -> {new}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
