#!/usr/bin/env bash
# BAIT options against a gentler victim than the demo's: EfficientNet-Lite0 (ImageNet) fine-tuned
# 8 epochs at lr 0.005 and 32 px, on the 5,000-image CIFAR-10 subset, full clean test set.
# One row per variant: protect time and the victim's final / best test accuracy.
# Resumable: finished steps are kept.
#   UNLEARNABLE_DATA=../shared/data bash experiments/bait-variants.sh [runs/bait-variants]
set -euo pipefail
OUT=${1:-runs/bait-variants}
UL=${UNLEARNABLE:-.venv/bin/unlearnable}
mkdir -p "$OUT"
VARIANTS=(
  "cpu-preset|"
  "input-sizes-32-48-64|--set input_sizes=[32,48,64]"
  "surrogate-and-lookahead-lr-0.01|--set surrogate_lr=0.01 --set lookahead_lr=0.01"
  "surrogate-lr-0.01|--set surrogate_lr=0.01"
  "surrogate-steps-4|--set surrogate_steps=4"
  "frozen-surrogate|--set surrogate_lr=0"
  "lookahead-steps-5|--set lookahead_steps=5"
  "direct-size-16|--set direct_size=16"
  "direct-size-4|--set direct_size=4"
)
VICTIM="--init imagenet --lr 0.005 --input-size 32"
echo "| variant | protect s | victim final / best | options |"
echo "|---|---|---|---|"
for entry in "${VARIANTS[@]}"; do
  name=${entry%%|*}; opts=${entry#*|}
  [ -f "$OUT/$name/manifest.json" ] ||
    $UL protect --data cifar10 --train-per-class 500 --method bait $opts --out "$OUT/$name" --quiet --force
  [ -f "$OUT/eval-$name/record.json" ] ||
    $UL evaluate --train "$OUT/$name" $VICTIM --out "$OUT/eval-$name" --quiet --force > /dev/null
  python3 - "$OUT" "$name" "$opts" <<'PY'
import json, sys
out, name, opts = sys.argv[1:]
m = json.load(open(f"{out}/{name}/manifest.json"))
r = json.load(open(f"{out}/eval-{name}/record.json"))
print(f"| {name} | {m['seconds']:.0f} | {100 * r['final_test_acc']:.1f} / {100 * r['best_test_acc']:.1f} | `{opts or '-'}` |")
PY
done
