#!/usr/bin/env bash
# Protection of a look (docs/photos.md, "Looks: visibility and protection"): BAIT (`cpu` preset)
# under --look LOOK, measured two ways.
#   1. CIFAR-10 enlarged to 128 px as photos (fitted at 32 px, drawn at 128 px), `unlearnable check`
#      with the pretrained victim: clean originals, protected, protected then JPEG 75.
#   2. The 5,000-image 32 px subset as a method row: the demo's three victims (small_cnn from
#      scratch; EfficientNet-Lite0 ImageNet at lr 0.02 and at lr 0.005), full clean test set.
# Usage: UNLEARNABLE_DATA=... bash experiments/look-protection.sh LOOK [WORK_DIR]   (about 45 min, 2 cores)
set -euo pipefail
look=$1
work=${2:-runs/look-protection}
mkdir -p "$work"
[ -d "$work/originals128" ] || python experiments/enlarge_cifar.py "$work/originals128" --size 128
[ -d "$work/photos-$look" ] || unlearnable protect --quiet --data "$work/originals128" --method bait --working-size 32 \
    --look "$look" --out "$work/photos-$look"
[ -d "$work/check-$look" ] || unlearnable check --quiet "$work/photos-$look" --data "$work/originals128" --init imagenet \
    --steps jpeg75 --no-rrc --out "$work/check-$look"
[ -d "$work/set-$look" ] || unlearnable protect --quiet --data cifar10 --train-per-class 500 --method bait --look "$look" \
    --out "$work/set-$look"
for v in "scratch" "imagenet" "imagenet --lr 0.005"; do
    name=$(echo "$v" | tr -d ' -' | sed 's/lr0.005/-gentle/')
    [ -d "$work/eval-$look-$name" ] || unlearnable evaluate --quiet --train "$work/set-$look" --data cifar10 --init $v \
        --out "$work/eval-$look-$name"
done
cat "$work/check-$look/report.md"
for f in "$work"/eval-"$look"-*/record.json; do
    python -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[1], round(100*r['final_test_acc'],1), round(100*r['best_test_acc'],1))" "$f"
done
