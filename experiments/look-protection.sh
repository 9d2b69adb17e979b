#!/usr/bin/env bash
# Protection of a look (docs/photos.md, "Looks: visibility and protection"): BAIT (`cpu` preset)
# under --look LOOK, measured two ways.
#   1. CIFAR-10 enlarged to 128 px as photos (fitted at 32 px, drawn at 128 px), `unlearnable check`
#      with the pretrained victim: clean originals, protected, protected then JPEG 75.
#   2. The 5,000-image 32 px subset as a method row: the demo's three victims (small_cnn from
#      scratch; EfficientNet-Lite0 ImageNet at lr 0.02 and at lr 0.005), full clean test set.
# Usage: UNLEARNABLE_DATA=... bash experiments/look-protection.sh LOOK [WORK_DIR [NAME]]   (about 40 min, 2 cores)
# LOOK is a named look or KEY=VALUE pairs (look.py); NAME names its folders (default: LOOK).
set -euo pipefail
work=${2:-runs/look-protection}
name=${3:-$1}
mkdir -p "$work"
[ -d "$work/originals128" ] || python experiments/enlarge_cifar.py "$work/originals128" --size 128
[ -d "$work/photos-$name" ] || unlearnable protect --quiet --data "$work/originals128" --method bait --working-size 32 \
    --look "$1" --out "$work/photos-$name"
[ -d "$work/check-$name" ] || unlearnable check --quiet "$work/photos-$name" --data "$work/originals128" --init imagenet \
    --steps jpeg75 --no-rrc --out "$work/check-$name"
[ -d "$work/set-$name" ] || unlearnable protect --quiet --data cifar10 --train-per-class 500 --method bait --look "$1" \
    --out "$work/set-$name"
for v in "scratch" "imagenet" "imagenet --lr 0.005"; do
    victim=$(echo "$v" | tr -d ' -' | sed 's/lr0.005/-gentle/')
    [ -d "$work/eval-$name-$victim" ] || unlearnable evaluate --quiet --train "$work/set-$name" --data cifar10 --init $v \
        --out "$work/eval-$name-$victim"
done
cat "$work/check-$name/report.md"
for f in "$work"/eval-"$name"-*/record.json; do
    python -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[1], round(100*r['final_test_acc'],1), round(100*r['best_test_acc'],1))" "$f"
done
