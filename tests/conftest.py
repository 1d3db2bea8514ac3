"""Shared test helpers: where the shipped fixtures and ../shared are."""
import tarfile
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


@pytest.fixture(scope="session")
def si8_c030(tmp_path_factory):
    """Cell c030 of ../shared/datasets/abacus/si8_v311 (ABACUS v3.11 rattled 8-atom Si, held out from every
    shipped model): the SCF run's H, S and DM with the zeroth-step H0 (:func:`dftplug.convert.read_pair`)."""
    from dftplug.convert import plan_pairs, read_pair

    base = shared_path("datasets", "abacus")
    work = tmp_path_factory.mktemp("si8_v311")
    with tarfile.open(base / "si8_v311" / "c030.tar.xz") as tar:
        tar.extractall(work, filter="data")
    (work / "PP_ORB").symlink_to(base / "si8" / "PP_ORB")
    (pair,) = plan_pairs([work / "c030" / "scf"])
    return read_pair(pair)
