"""``python -m ambridge.kde --preset chapters/presets/05_kde_capacity/paper.yaml --device cuda --out X.json``

Runs chapter 5's capacity sweep outside the notebook (the GPU machine has no Jupyter) and writes one JSON file: a run
record (parameters, commit, hardware, wall time) with every (d, N, seed) record and the capacities. ``--checkpoint``
makes it resumable; ``--set name=value`` overrides a preset value (the value read as YAML). Presets are read with
PyYAML. Used in chapter 5, § At scale, and by ``benchmarks/gpu/05_kde_capacity.sh``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Sequence

from ..book.records import run_record
from ..checks import ParameterError
from ..runtime import hardware_summary, select_device
from .sweep import SWEEP_PARAMETERS, CapacitySweep, capacities, finished_dimensions, run_sweep


def _yaml():
    try:
        import yaml
    except ImportError:  # the GPU machine's python: benchmarks/gpu/05_kde_capacity.sh installs it from its wheels
        sys.exit("python -m ambridge.kde needs PyYAML to read presets: pip install pyyaml")
    return yaml


def read_preset(path: str | Path) -> dict:
    """A preset file: a YAML mapping of chapter parameter names to values."""
    yaml, path = _yaml(), Path(path)
    if not path.is_file():
        raise ParameterError("preset", str(path), "no such file")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParameterError("preset", str(path), f"is not valid YAML ({err})") from None
    if not isinstance(params, dict):
        raise ParameterError("preset", str(path), "must be a YAML mapping of `name: value` lines")
    return params


def parse_override(item: str) -> tuple[str, object]:
    """``name=value`` from ``--set``; the value is read as YAML (``8`` an int, ``1.5`` a float, ``auto`` text)."""
    name, sep, value = item.partition("=")
    if not sep or not name.strip():
        raise ParameterError("--set", item, "must have the form name=value")
    return name.strip(), _yaml().safe_load(value)


def _json_safe(obj):
    """NaN and infinities become null, so the file is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sweep a preset describes and write its run record (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m ambridge.kde", description="Run chapter 5's capacity sweep from a preset and write its run record.")
    ap.add_argument("--preset", required=True, help="a chapter preset (chapters/presets/05_kde_capacity/*.yaml)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a preset value")
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--checkpoint", help="JSON-lines file: results appended per (d, N, seed); reused on rerun")
    ap.add_argument("--label", default="", help="a note stored in the record (e.g. 'CPU-scale')")
    ap.add_argument("--time-limit", type=float, help="seconds: start no new N after this; write what is done")
    args = ap.parse_args(argv)

    params = read_preset(args.preset)
    params.update(parse_override(item) for item in args.set)
    missing = [k for k in SWEEP_PARAMETERS if k not in params]
    if missing:
        raise ParameterError("preset", args.preset, "must set " + ", ".join(missing))
    device = select_device(args.device)
    params["device"] = str(device)
    sweep = CapacitySweep.from_parameters(params, device)
    print(f"capacity sweep on {hardware_summary(device)}: d = {list(sweep.dims)}, s = {sweep.bandwidth_scale}, "
          f"precision {sweep.precision}, {sweep.n_queries} queries, {sweep.n_seeds} seeds", flush=True)
    t0 = time.perf_counter()
    records = run_sweep(sweep, checkpoint=args.checkpoint, progress=lambda m: print(m, flush=True),
                        time_limit=args.time_limit)
    wall = time.perf_counter() - t0
    finished = finished_dimensions(sweep, records)
    sweep_params = {f.name: getattr(sweep, f.name) for f in fields(sweep)}
    sweep_params["step_tol"] = sweep.step_tol
    record = run_record({**params, "sweep": sweep_params}, wall_time_s=wall, device=device, label=args.label,
                        complete=len(finished) == len(sweep.dims), dims_finished=finished, records=records,
                        capacities=capacities(records, params["p_fail"]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_json_safe(record), indent=1, allow_nan=False) + "\n")
    print(f"wrote {out} after {wall:.1f} s", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    try:
        sys.exit(main())
    except ParameterError as e:
        sys.exit(f"ambridge.kde: {e}")
