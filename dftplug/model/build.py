"""The ΔH model of a basis layout: :class:`.model.DeltaHModel`, or its spin-orbit extension.

Apart from :mod:`.model` so that :mod:`.spinor_model`, which builds on that module, is not
imported back by it (no import cycle).
"""
from __future__ import annotations

from .irreps import BasisLayout
from .model import DeltaHModel, ModelConfig
from .spinor_model import SpinorDeltaHModel


def make_model(layout: BasisLayout, config: ModelConfig | None = None) -> DeltaHModel:
    """The ΔH model of ``layout``: :class:`DeltaHModel`, or for spin-orbit data (nspin 4) its
    spinor extension :class:`.spinor_model.SpinorDeltaHModel`."""
    if layout.nspin == 4:
        return SpinorDeltaHModel(layout, config)
    return DeltaHModel(layout, config)
