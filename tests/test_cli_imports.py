"""The command line loads only what a command uses: ``dftplug --help`` no numpy or torch, ``convert``
no torch, e3nn, sisl or matplotlib, ``infer --write abacus`` no matplotlib, sisl, h5py or torch's compiler
(each checked in a fresh interpreter)."""
import json
import subprocess
import sys

from .conftest import FIXTURES

SI = FIXTURES / "abacus311" / "si_diamond"
HEAVY = ("numpy", "torch", "torch._dynamo", "e3nn", "sympy", "sisl", "matplotlib", "ase.io", "h5py", "scipy")


def loaded_after(args: list[str]) -> set[str]:
    """The HEAVY modules loaded by ``dftplug ARGS`` run in a fresh interpreter."""
    code = ("import sys, json\nfrom dftplug.cli import main\n"
            f"try:\n    main({args!r})\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(res.stdout.splitlines()[-1]))


def test_help_loads_nothing_heavy():
    assert loaded_after(["--help"]) == set()
    assert loaded_after(["infer", "--help"]) == set()


def test_convert_and_infer_load_only_their_libraries(tmp_path):
    convert = loaded_after(["convert", str(SI / "scf"), "-o", str(tmp_path / "si.h5")])
    assert {"numpy", "h5py"} <= convert and not convert & {"torch", "e3nn", "sisl", "matplotlib"}
    infer = loaded_after(["infer", str(SI / "h0"), "--model", "abacus_si8", "-o", str(tmp_path / "guess"),
                          "--write", "abacus", "--s-from", str(SI / "scf")])
    assert {"torch", "e3nn"} <= infer and not infer & {"torch._dynamo", "sisl", "matplotlib", "h5py", "ase.io"}
