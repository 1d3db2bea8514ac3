"""Sharded streaming reader of HDF5 training datasets: index the structures without reading them,
then read only the wanted ones, one at a time (no dataset is ever loaded whole into memory)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from dftplug.dataset import dataset_names, iter_dataset
from dftplug.errors import MismatchError
from dftplug.hamiltonian import Hamiltonian
from dftplug.validate import check_cutoffs

TRAINING_MATRICES = ("H", "H0", "S")  # what training and evaluation need of every structure


def structure_index(paths) -> list[tuple[Path, str, str]]:
    """(file, name in the file, training name) of every structure of the datasets, in order; the
    training name gets the file stem as a prefix when several files are given. Reads no matrices."""
    paths = [Path(p) for p in paths]
    index = [(p, n, f"{p.stem}/{n}" if len(paths) > 1 else n) for p in paths for n in dataset_names(p)]
    if not index:
        raise MismatchError("no structures in the training data")
    return index


def iter_structures(index, wanted: Iterable[int]) -> Iterator[tuple[int, str, Hamiltonian]]:
    """(position in ``index``, training name, Hamiltonian) of the ``wanted`` structures, read one
    at a time; refuses a structure without H, H0 or S, or whose basis states no cutoff radii."""
    wanted = sorted(set(wanted))
    for path in dict.fromkeys(index[i][0] for i in wanted):
        mine = [i for i in wanted if index[i][0] == path]
        for i, (_, h) in zip(mine, iter_dataset(path, [index[i][1] for i in mine], require=TRAINING_MATRICES)):
            check_cutoffs(h, f"{path} (structure {index[i][1]})")
            yield i, index[i][2], h
