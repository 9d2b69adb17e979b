#!/usr/bin/env bash
# Every baseline on the CPU-size CIFAR-10 subset (500 images per class), evaluated on the full
# clean test set by the from-scratch and the ImageNet-pretrained CPU victims.
# Resumable: finished protections and evaluations are kept. Then prints the table.
#   UNLEARNABLE_DATA=../shared/data bash experiments/baselines-cpu.sh [runs/baselines]
set -euo pipefail
OUT=${1:-runs/baselines}
UL=${UNLEARNABLE:-.venv/bin/unlearnable}
mkdir -p "$OUT"
# row name | protect options
METHODS=(
  "random|--method random"
  "random-sw|--method random --set kind=samplewise"
  "lsp|--method lsp"
  "ops|--method ops"
  "ar|--method ar"
  "tap|--method tap"
  "em-sw|--method em --set kind=samplewise"
  "rem|--method rem"
  "em-star|--method em*"
  "tap-star|--method tap*"
  "rem-star|--method rem*"
  "pil|--method pil"
)
for entry in "${METHODS[@]}"; do
  name=${entry%%|*}; opts=${entry#*|}
  if [ ! -f "$OUT/$name/manifest.json" ]; then
    $UL protect --data cifar10 --train-per-class 500 $opts --out "$OUT/$name" --quiet --force
  fi
  for init in scratch imagenet; do
    if [ ! -f "$OUT/eval-$name-$init/record.json" ]; then
      $UL evaluate --train "$OUT/$name" --init $init --out "$OUT/eval-$name-$init" --quiet --force
    fi
  done
done
python3 experiments/baselines_table.py "$OUT"
