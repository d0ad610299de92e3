"""``import credit_nas_jax`` stays light; its exported names still resolve."""

import json
import subprocess
import sys

HEAVY = ("matplotlib", "tensorboard", "sklearn", "lightgbm", "pandas")

# In a fresh interpreter, so that what other tests imported does not count.
_PROBE = f"""
import json, sys
import credit_nas_jax
heavy = [m for m in {HEAVY!r} if m in sys.modules]
exported = {{name: type(getattr(credit_nas_jax, name)).__name__
            for name in credit_nas_jax.__all__}}
print(json.dumps({{
    "heavy_after_import": heavy,
    "exported": exported,
    "run_experiment": credit_nas_jax.run_experiment.__module__,
    "run_sweep": credit_nas_jax.run_sweep.__module__,
    "prepare_experiment": credit_nas_jax.prepare_experiment.__qualname__,
    "pipeline_module": credit_nas_jax.pipeline.__name__,
    "dir_lists_exports": set(credit_nas_jax.__all__) <= set(
        dir(credit_nas_jax)),
}}))
"""


def _probe() -> dict:
  result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True,
                          text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-4000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def test_package_import_is_light_and_exports_resolve_lazily():
  report = _probe()
  assert report["heavy_after_import"] == [], (
      f"import credit_nas_jax imported {report['heavy_after_import']}")
  # Every exported name resolved (the probe read them all) on first access.
  assert report["exported"]["Architecture"] == "type"
  assert report["exported"]["run_experiment"] == "function"
  assert report["run_experiment"] == "credit_nas_jax.pipeline"
  assert report["run_sweep"] == "credit_nas_jax.sweep"
  assert report["prepare_experiment"] == "prepare"
  assert report["pipeline_module"] == "credit_nas_jax.pipeline"
  assert report["dir_lists_exports"]


def test_unknown_attribute_is_an_attribute_error():
  import credit_nas_jax  # pylint: disable=g-import-not-at-top
  assert not hasattr(credit_nas_jax, "no_such_name")
  try:
    credit_nas_jax.no_such_name  # pylint: disable=pointless-statement
  except AttributeError as error:
    assert "no_such_name" in str(error)
  else:
    raise AssertionError("expected an AttributeError")
