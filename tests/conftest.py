"""Shared test helpers: where the shipped fixtures and ../shared are."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
SHARED = Path(__import__("os").environ.get("DFTPLUG_SHARED", ROOT.parent / "shared")).resolve()


def shared_path(*parts) -> Path:
    """Path inside ../shared; the test is skipped with a clear reason when it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs {p} (../shared is not beside this checkout)")
    return p


# the smallest useful model, for training runs inside tests (a [model] table of a train.toml)
TINY_MODEL_TOML = """
[model]
num_layers = 1
node_mul = [4, 2, 2]
edge_mul = [4, 2, 2, 2]
num_basis = 4
radial_hidden = 8
env_basis = 1
response_basis = 6
"""


def point_inputs_at(copy: Path, original: Path) -> None:
    """Make the ABACUS run ``copy`` (a copy of ``original``) find the orbital and pseudopotential
    files of ``original``: its INPUT's relative ``orbital_dir``/``pseudo_dir`` become absolute."""
    lines = []
    for line in (copy / "INPUT").read_text().splitlines():
        key, *value = line.split()
        if key in ("orbital_dir", "pseudo_dir") and value:
            line = f"{key}  {(original / value[0]).resolve()}"
        lines.append(line)
    (copy / "INPUT").write_text("\n".join(lines) + "\n")
