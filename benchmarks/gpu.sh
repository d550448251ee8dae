#!/usr/bin/env bash
# The GPU benchmarks in one go: the embed benchmarks 1-3 of the README's table and the probe
# benchmarks, each with --device cuda, their JSON gathered into one object printed last.
#
#   bash benchmarks/gpu.sh                      # on a GPU machine: --device cuda --n 2000 --model base
#   bash benchmarks/gpu.sh --device cpu --quick # a dry run anywhere (tiny sizes, small model)
#   bash benchmarks/gpu.sh --out gpu.json       # also write the object to a file
#
# Options: --device (cuda), --n (2000 clips for the embed benchmarks), --model (base | small),
# --probe-n (100000 rows for probe_stream.py; its store needs 10 GB of --tmp), --tmp (a folder with
# room, default the system's), --quick (sizes for a dry run: n 16, small model, probe-n 2000, small
# probe shapes), --only NAME[,NAME] (a subset: embed_vs_seed, pipeline_efficiency, incremental,
# probe_sweep, probe_stream). Each benchmark's stdout and stderr go to <log dir>/<name>.out|.err; one that
# fails is recorded as {"error": ..., "log": ...} and the others still run; the exit status is 1 if
# any failed. The first key, "machine", is nvidia-smi's GPU name and memory (or "no nvidia-smi"),
# the CPU model, core count and RAM.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
python="${PYTHON:-$root/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"

device=cuda n=2000 model=base probe_n=100000 tmp="" quick=0 out="" only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --n) n="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --probe-n) probe_n="$2"; shift 2 ;;
    --tmp) tmp="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "gpu.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$quick" = 1 ]; then n=16; model=small; probe_n=2000; fi
if [ "$device" = cuda ] && ! "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu.sh: --device cuda but torch sees no CUDA device (run with --device cpu for a dry run)" >&2
  exit 2
fi
logs="$(mktemp -d "${TMPDIR:-/tmp}/gpu-bench-XXXXXX")"
tmp_args=()
[ -n "$tmp" ] && tmp_args=(--tmp "$tmp")
probe_shape=()
[ "$quick" = 1 ] && probe_shape=(--layers 5 --dim 64)
sweep_shape=(--layers 25 --dim 1024 --n 20000)
[ "$quick" = 1 ] && sweep_shape=(--layers 3 --dim 32 --n 400)

declare -A cmds=(
  [embed_vs_seed]="benchmarks/embed_vs_seed.py --device $device --n $n --model $model"
  [pipeline_efficiency]="benchmarks/pipeline_efficiency.py --device $device --n $n --model $model"
  [incremental]="benchmarks/incremental.py --device $device --n $n --model $model"
  [probe_sweep]="benchmarks/probe_sweep.py --device $device ${sweep_shape[*]} --skip-sklearn"
  [probe_stream]="benchmarks/probe_stream.py --device $device --n $probe_n --arms stream ${probe_shape[*]} ${tmp_args[*]}"
)
order=(embed_vs_seed pipeline_efficiency incremental probe_sweep probe_stream)

machine="$("$python" - <<'EOF'
import json, os, shutil, subprocess
gpu = "no nvidia-smi"
if shutil.which("nvidia-smi"):
    q = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                       capture_output=True, text=True)
    gpu = q.stdout.strip() or q.stderr.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) // 2**20 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
print(json.dumps({"gpu": gpu, "cpu": cpu, "cores": os.cpu_count(), "ram_gib": mem}))
EOF
)"
results="{\"machine\": $machine, \"device\": \"$device\", \"logs\": \"$logs\""
failed=0
for name in "${order[@]}"; do
  if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then continue; fi
  echo "gpu.sh: $name: ${cmds[$name]}" >&2
  start=$(date +%s)
  set +e
  (cd "$root" && HF_HUB_OFFLINE=1 "$python" ${cmds[$name]}) >"$logs/$name.out" 2>"$logs/$name.err"
  rc=$?
  set -e
  if [ "$rc" = 0 ]; then
    # the benchmark's JSON: its last line, or (probe_sweep prints it indented) from the last line opening "{"
    json="$("$python" "$here/_last_json.py" "$logs/$name.out")" \
      || { failed=1; json="{\"error\": \"no JSON in its output\", \"log\": \"$logs/$name.out\"}"; }
  else
    failed=1
    json="{\"error\": \"exit status $rc\", \"log\": \"$logs/$name.err\"}"
  fi
  echo "gpu.sh: $name done in $(( $(date +%s) - start )) s" >&2
  results="$results, \"$name\": $json"
done
results="$results}"
pretty="$("$python" -c 'import json,sys; print(json.dumps(json.loads(sys.argv[1])))' "$results")"
[ -n "$out" ] && printf '%s\n' "$pretty" >"$out"
printf '%s\n' "$pretty"
exit $failed
