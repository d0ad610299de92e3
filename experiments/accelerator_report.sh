#!/usr/bin/env bash
# Measures a whole accelerator in one go: the GPU-sensitive tests, every
# step kind and workload for JAX and the PyG peer (eager and torch.compile),
# the device-resident loops against their bare steps, a 32-member sweep and
# the main job's wall time. Writes report.md, the JSON rows and one log
# into OUT_DIR (default: $OUT, else runs/accelerator). About 8 minutes on
# an H100/H200.
#
#   bash experiments/accelerator_report.sh [OUT_DIR]
#
# On a lent machine without jraph or ml_collections, carry their wheels in
# .whl/ (see BUILD_NOTES.md, "Measuring an accelerator"); this script
# installs them into /tmp/site first.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-runs/accelerator}}"
mkdir -p "$out"
log="$out/report.log"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --upgrade --target /tmp/site .whl/*.whl && \
      export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
step() {  # step NAME SECONDS COMMAND...: runs one part, logs it, never stops
  local name="$1" limit="$2"; shift 2
  echo "=== $name ($(date -u +%T), limit ${limit}s)" | tee -a "$log"
  local start=$SECONDS
  timeout "$limit" "$@" >> "$log" 2>&1
  echo "=== $name: exit $? in $((SECONDS - start))s" | tee -a "$log"
}
python3 -c "import jax; print(jax.devices())" 2>&1 | tee -a "$log"
step tests 120 python3 -m pytest -q -x -p no:cacheprovider \
    tests/test_model.py tests/test_properties.py tests/test_pyg_reference.py \
    tests/test_experiment.py tests/test_sampling.py
step steps 200 python3 experiments/benchmark.py --impl=jax,pyg \
    --pyg_compile --workloads=b256,b1024,b4096,g100k --steps=30 \
    --kinds=search_first_order,search_second_order,retrain,inference,supernet_inference \
    --output="$out/steps.json"
step loops 90 python3 experiments/benchmark.py --workloads= \
    --loops=d16_b128,d100_b1024 --loop_steps=200 --rounds=2 \
    --output="$out/loops.json"
step sweep 60 python3 experiments/sweep_benchmark.py --members=32 \
    --batch_size=1024 --hidden_dim=100 --steps=50 --output="$out/sweep.json"
rm -rf /tmp/accelerator_main
step main_job 90 python3 experiments/search.py --workdir=/tmp/accelerator_main
cp /tmp/accelerator_main/search_cost.json "$out/main_search_cost.json" \
    2>/dev/null
python3 - "$out" <<'PY' | tee "$out/report.md"
import json, os, sys
out = sys.argv[1]
def load(name):
  path = os.path.join(out, name)
  return json.load(open(path)) if os.path.exists(path) else None
import jax
print(f"# Accelerator report: {jax.devices()[0].device_kind}, jax "
      f"{jax.__version__}\n")
steps = load("steps.json") or []
print("| impl | workload | kind | median ms |\n|---|---|---|---|")
for r in steps:
  print(f"| {r['impl']} | {r['workload']} | {r['kind']} | "
        f"{r['median_ms']:.2f} |")
print("\n| loop | kind | loop ms/step | bare step ms | loop / bare |")
print("|---|---|---|---|---|")
for r in load("loops.json") or []:
  print(f"| {r['workload']} | {r['kind']} | {r['loop_ms']:.2f} | "
        f"{r['bare_step_ms']:.2f} | {r['loop_over_bare_step']:.3f} |")
sweep = load("sweep.json")
if sweep:
  print(f"\nSweep: {sweep['members']} members, per member / lone run "
        f"{sweep['per_member_over_lone']:.3f}")
main = load("main_search_cost.json")
if main:
  print(f"\nMain job: {main['total_seconds']:.1f} s inside the pipeline "
        f"(compile {main['compile_seconds']:.1f} s, search "
        f"{main['search_seconds']:.1f} s, retrain "
        f"{main['retrain_seconds']:.1f} s), loop/bare "
        f"{main['loop_over_bare_step']:.2f}")
PY
