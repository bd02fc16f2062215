"""`make mutants`: mutation testing of the core and the runner/sweep machinery with mutmut.

mutmut names modules after their path and strips only a leading ``src/``, so the library (kept under ``lib/``) is
staged in ``build/mutation/src`` with the tests beside it; mutmut then plants one small bug at a time in the files
``[tool.mutmut] only_mutate`` lists (``pyproject.toml``) and runs the tests that cover each. The score — killed /
(killed + survived) — is printed and written to ``build/mutation/score.json``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STAGE = ROOT / "build" / "mutation"


def main() -> int:
    shutil.rmtree(STAGE, ignore_errors=True)
    STAGE.mkdir(parents=True)
    shutil.copytree(ROOT / "lib", STAGE / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("tests", "chapters", "book"):
        shutil.copytree(ROOT / name, STAGE / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("_toc.yml", "_config.yml"):
        shutil.copy2(ROOT / name, STAGE / name)
    config = (ROOT / "pyproject.toml").read_text().replace('"lib/ambridge', '"src/ambridge')
    (STAGE / "pyproject.toml").write_text(config)
    mutmut = Path(sys.executable).with_name("mutmut")
    run = subprocess.run([str(mutmut), "run"], cwd=STAGE)
    subprocess.run([str(mutmut), "export-cicd-stats"], cwd=STAGE, check=True)
    stats = json.loads((STAGE / "mutants" / "mutmut-cicd-stats.json").read_text())
    decided = stats["killed"] + stats["survived"]
    score = stats["killed"] / decided if decided else float("nan")
    stats["score"] = round(score, 4)
    (STAGE / "score.json").write_text(json.dumps(stats, indent=1) + "\n")
    print(f"mutation score: {stats['killed']} killed / {decided} decided = {score:.1%} "
          f"(survived {stats['survived']}, no tests {stats.get('no_tests', 0)}, timeouts {stats.get('timeout', 0)}); "
          f"survivors: cd {STAGE.relative_to(ROOT)} && {mutmut} results")
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
