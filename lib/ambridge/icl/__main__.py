"""``python -m ambridge.icl --preset paper --steps 5000 --time-budget 240 --out DIR --name NAME``: train the
in-context energy transformer (see :func:`ambridge.icl.train.main`)."""

import sys

from .train import main

sys.exit(main())
