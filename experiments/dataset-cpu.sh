#!/usr/bin/env bash
# EM and BAIT (cpu presets) on one dataset beside clean data, each evaluated by the from-scratch
# and the ImageNet-pretrained CPU victims on the dataset's full clean test set; wall time and
# peak memory of every step from /usr/bin/time. Resumable: finished steps are kept.
#   bash experiments/dataset-cpu.sh DATA OUT [options for protect and evaluate ...]
# e.g.
#   bash experiments/dataset-cpu.sh fashion-mnist runs/fashion-mnist --train-per-class 500
#   UNLEARNABLE_DATA=../shared/data bash experiments/dataset-cpu.sh cifar10 runs/cifar10-64px \
#       --train-per-class 200 --image-size 64
set -euo pipefail
DATA=$1; OUT=$2; shift 2
UL=${UNLEARNABLE:-.venv/bin/unlearnable}
mkdir -p "$OUT"
timed() { local log=$1; shift; /usr/bin/time -f "%e s, peak %M KB" -o "$log" "$@"; }
for m in em bait; do
  [ -f "$OUT/$m/manifest.json" ] ||
    timed "$OUT/$m.time" $UL protect --data "$DATA" "$@" --method $m --out "$OUT/$m" --quiet --force
done
for m in clean em bait; do
  if [ $m = clean ]; then train="$DATA"; else train="$OUT/$m"; fi
  for init in scratch imagenet; do
    [ -f "$OUT/eval-$m-$init/record.json" ] ||
      timed "$OUT/eval-$m-$init.time" $UL evaluate --train "$train" --data "$DATA" "$@" --init $init \
        --out "$OUT/eval-$m-$init" --quiet --force
  done
done
python3 experiments/dataset_table.py "$OUT"
