#!/usr/bin/env bash
# Wheels for running benchmarks/gpu_ingest.py on a GPU machine that has torch, torchvision, pillow,
# pyarrow and numpy but no network: everything else pinembed needs, for CPython 3.12 on x86-64 Linux,
# in .whl/ (kept out of git by .git/info/exclude), in parts of at most 60 MB for 64 MiB transfers.
#
#   bash benchmarks/device_wheels.sh            # then carry .whl/partN one call at a time
#
# On the machine, each call copies its part to /tmp/whl (it stays while the machine is warm), then
# `cat /tmp/whl/lancedb-*.piece-* > /tmp/whl/lancedb-....whl` (the name before ".piece"), and:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site /tmp/whl/*.whl
#   PYTHONPATH=/tmp/site:. python3 benchmarks/gpu_ingest.py
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl/all && mkdir -p .whl/all
plat=()
for p in manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_24_x86_64 manylinux_2_27_x86_64 \
         manylinux_2_28_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64 manylinux_2_35_x86_64 manylinux1_x86_64; do
  plat+=(--platform "$p")
done
mapfile -t deps < <(python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))')
# resolve for the target without fetching wheels (PyPI serves their metadata), then fetch all but what
# the machine has (torch and its CUDA libraries are gigabytes)
python3 -m pip install -q --dry-run --ignore-installed --report .whl/report.json --only-binary=:all: \
  --python-version 3.12 --implementation cp "${plat[@]}" --target /tmp/pinembed-none "${deps[@]}" 'torchcodec>=0.16'
mapfile -t pins < <(python3 -c '
import json
have = ("torch==", "torchvision==", "pillow==", "numpy==", "pyarrow==", "triton==", "nvidia-", "cuda-", "setuptools==",
        "sympy==", "mpmath==", "networkx==", "jinja2==", "markupsafe==", "fsspec==", "filelock==")  # torch brings these
for i in json.load(open(".whl/report.json"))["install"]:
    m = i["metadata"]
    pin = m["name"].lower() + "==" + m["version"]
    if not pin.startswith(have):
        print(pin)')
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" \
  -d .whl/all "${pins[@]}"
# one part per call: files packed up to 60 MB; a larger wheel (lancedb) is split into 40 MB pieces, a part each
n=0; size=0; mkdir -p .whl/part0
for f in $(ls -S .whl/all/*.whl); do
  s=$(stat -c %s "$f")
  if (( s > 60000000 )); then
    split -b 40M "$f" ".whl/$(basename "$f").piece-"
    for piece in .whl/*.piece-*; do
      if (( size > 0 )); then n=$((n + 1)); mkdir -p ".whl/part$n"; fi
      mv "$piece" ".whl/part$n/"; size=$(stat -c %s ".whl/part$n/$(basename "$piece")")
    done
    continue
  fi
  if (( size + s > 60000000 )); then n=$((n + 1)); size=0; mkdir -p ".whl/part$n"; fi
  cp "$f" ".whl/part$n/"; size=$((size + s))
done
du -sh .whl/part* | sed 's/^/  /'
