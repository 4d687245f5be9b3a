"""The network in SimPy time (issue 14): a discrete-event model of the hub, its gateways and links, driven
by the same workload as ``rhin load``, calibrated from the live network (:mod:`.calibration`) and checked
against live runs (:mod:`.validate`). :mod:`.model` is the model, :mod:`.whatif` its knobs as data."""

from .calibration import Calibration, CalibrationError, Dist, load_calibration, nominal_calibration
from .histogram import Histogram
from .model import DesModel, Results
from .whatif import WhatIf, WhatIfError, apply_pairs, load_overlay, parse_sweep
from .world import DesWorld

__all__ = [
    "Calibration",
    "CalibrationError",
    "DesModel",
    "DesWorld",
    "Dist",
    "Histogram",
    "Results",
    "WhatIf",
    "WhatIfError",
    "apply_pairs",
    "load_calibration",
    "load_overlay",
    "nominal_calibration",
    "parse_sweep",
]
