"""The places more than one layer names: the checkout, its Hydra configs, and the sweep's
directory for the runs that share one base model. Imports nothing heavy (no torch)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the checkout (src/selfcorrect/paths.py → its root)
# the Hydra configs (conf/); $SELFCORRECT_CONF_DIR for another set
CONF_DIR = os.environ.get("SELFCORRECT_CONF_DIR", str(REPO / "conf"))
SHARED_BASE_DIR = "shared_base"  # where `make sweep` puts the runs that share one base (selfcorrect.sweeps.sweep)
