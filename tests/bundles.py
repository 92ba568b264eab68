"""Render Migration objects to bundle files for tests, exactly as `dbdeploy generate` would."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dbdeploy.ops.migration import Migration
from dbdeploy.plan.loader import LoadedMigration
from dbdeploy.plan.migration_plan import plan_all
from dbdeploy.render.bundle import render_bundle


@dataclass(frozen=True)
class BundleFiles:
    folder: Path
    forward: Path
    rollback: Path
    manifest: Path


def write_bundles(migrations: list[Migration], out: Path) -> dict[str, BundleFiles]:
    """Plan ``migrations`` together (in version order) and write their bundles under ``out``."""
    loaded = [LoadedMigration(m, Path(f"test_spec_{m.version}.py"))
              for m in sorted(migrations, key=lambda m: int(m.version))]
    result: dict[str, BundleFiles] = {}
    for plan, item in zip(plan_all(loaded), loaded, strict=True):
        bundle = render_bundle(plan, item.source.name)
        folder = out / bundle.folder
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in bundle.files.items():
            (folder / name).write_text(content)
        names = list(bundle.files)      # forward and rollback come first, by construction
        result[plan.migration.version] = BundleFiles(folder, folder / names[0], folder / names[1],
                                                     folder / "manifest.json")
    return result
