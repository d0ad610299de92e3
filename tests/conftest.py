"""Matmul precision for exactness tests, and a CPU check that they pin it.

XLA on a GPU runs float32 dots left at the default precision in TF32 (10
mantissa bits), so a test that compares two orders of the same products at
1e-5 fails there unless it pins the precision. Mark such a test
``@pytest.mark.highest_matmul_precision``: its dots then run at full float32
on every backend (``jax.default_matmul_precision("highest")``).

XLA:CPU ignores the matmul precision (``jax_default_matmul_precision`` and
``precision=`` change nothing there), so to check the marks on a CPU:

  python -m pytest -q --matmul-precision=tensorfloat32 tests/test_model.py

emulates a GPU's default: every float32 operand of a dot left at the default
precision is rounded to TF32 (or ``bfloat16``: 7 mantissa bits) before the
dot, which still accumulates in float32. Dots at an explicit higher
precision ("highest", "float32", "tensorfloat32"), non-float32 dots and
every other op are left as they are. An unmarked exactness test then fails,
a marked one passes. It does not emulate a GPU's accumulation order, its
kernel choices or its reductions (segment sums), nor anything a test runs in
a subprocess.

Compilation dominates the suite's time (the tiny configs run in milliseconds
once compiled), and many tests compile the same programs: the session shares
one persistent XLA compilation cache (a fresh temporary directory, removed at
the end) between the xdist workers and the launchers they start, unless
``JAX_COMPILATION_CACHE_DIR`` is already set. The session also compiles
at XLA's lowest backend optimization level (``XLA_FLAGS`` gains
``--xla_backend_optimization_level=0``, inherited by every launcher it
starts, unless ``XLA_FLAGS`` already names a level): on the 2-core CPU
the protocol test's models compile in 64 s instead of 116 s. The programs
compute the same functions, less optimized; every test compares programs
built under the same flags, and the benchmarks and launchers outside the
tests keep XLA's default.
"""

import os
import shutil
import tempfile

import jax
import numpy as np
import pytest

_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"
_QUICK_COMPILE = "--xla_backend_optimization_level=0"
_OWNED_CACHE = None

_MANTISSA_BITS = {"tensorfloat32": 10, "bfloat16": 7}


def pytest_addoption(parser):
  """Adds --matmul-precision."""
  parser.addoption(
      "--matmul-precision", choices=sorted(_MANTISSA_BITS), default=None,
      help="Emulate on XLA:CPU a backend whose default float32 matmul "
      "precision is this: dots at the default precision round their float32 "
      "operands to it (see tests/conftest.py).")


def pytest_configure(config):
  """Registers the marker; installs the emulation when asked."""
  config.addinivalue_line(
      "markers", "highest_matmul_precision: run the test's dots at full "
      "float32 precision (it checks an identity at float32 tolerances)")
  _compile_quickly()  # before anything can start a backend
  name = config.getoption("--matmul-precision")
  if name is not None:
    _round_default_precision_dot_operands(_MANTISSA_BITS[name])
  _share_compilation_cache()


def pytest_unconfigure(config):
  """Removes the session's compilation cache if this process made it."""
  del config
  if _OWNED_CACHE is not None:
    shutil.rmtree(_OWNED_CACHE, ignore_errors=True)


def _compile_quickly() -> None:
  """Lowers XLA's backend optimization level for this session's programs.

  Runs before any test touches a backend; processes the session starts
  inherit ``XLA_FLAGS`` (a test that sets its own flags extends them, see
  ``launch.xla_flags``).
  """
  flags = os.environ.get("XLA_FLAGS", "")
  if "--xla_backend_optimization_level" not in flags:
    os.environ["XLA_FLAGS"] = f"{flags} {_QUICK_COMPILE}".strip()


def _share_compilation_cache() -> None:
  """Points this process, and every process it starts, at one cache.

  The first process (the xdist controller, or a plain pytest run) makes the
  directory and exports it; the workers and launched subprocesses inherit
  the variable. Every program is cached, however quick its compile.
  """
  global _OWNED_CACHE
  if not os.environ.get(_CACHE_ENV):
    _OWNED_CACHE = tempfile.mkdtemp(prefix="credit_nas_jax_xla_cache_")
    os.environ[_CACHE_ENV] = _OWNED_CACHE
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
  jax.config.update("jax_compilation_cache_dir", os.environ[_CACHE_ENV])
  jax.config.update(
      "jax_persistent_cache_min_compile_time_secs",
      float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
  jax.config.update(
      "jax_persistent_cache_min_entry_size_bytes",
      int(os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"]))


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
  """Keeps a module's tests on one xdist worker where they share a
  module-scoped fixture (a trained model, a run of every baseline), so it is
  built once, not once per worker that draws one of them
  (``--dist loadgroup``, set in setup.cfg); other tests spread one by one.
  """
  del config
  for item in items:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
      continue
    module = item.nodeid.split("::")[0]
    if any(d.scope == "module" and d.baseid == module
           for defs in info.name2fixturedefs.values() for d in defs):
      item.add_marker(pytest.mark.xdist_group(module))


@pytest.fixture(autouse=True)
def _pinned_matmul_precision(request):
  """Runs a test marked highest_matmul_precision under "highest"."""
  if request.node.get_closest_marker("highest_matmul_precision") is None:
    yield
    return
  with jax.default_matmul_precision("highest"):
    yield


def _round_default_precision_dot_operands(mantissa_bits: int) -> None:
  """Lowers every default-precision float32 dot on CPU with its operands
  rounded to ``mantissa_bits`` (8 exponent bits, round to nearest even)."""
  if jax.default_backend() != "cpu":
    raise pytest.UsageError(
        "--matmul-precision emulates a reduced default precision on XLA:CPU; "
        f"on {jax.default_backend()} run the suite as it is")
  # Internal APIs: the only hook that sees the precision every dot (jnp,
  # lax, einsum, and the dots of every gradient) was bound with.
  from jax._src.interpreters import mlir  # pylint: disable=g-import-not-at-top
  from jax._src.lax import lax as lax_internal  # pylint: disable=g-import-not-at-top
  from jax._src.lib.mlir.dialects import hlo  # pylint: disable=g-import-not-at-top

  default = jax.lax.Precision.DEFAULT

  def lower(ctx, lhs, rhs, *, precision, **params):
    if precision is None or precision == (default, default):
      lhs, rhs = [
          hlo.reduce_precision(x, mlir.i32_attr(8),
                               mlir.i32_attr(mantissa_bits))
          if aval.dtype == np.float32 else x
          for x, aval in zip((lhs, rhs), ctx.avals_in)]
    return lax_internal._dot_general_lower(  # pylint: disable=protected-access
        ctx, lhs, rhs, precision=precision, platform="cpu", **params)

  mlir.register_lowering(lax_internal.dot_general_p, lower, platform="cpu")
