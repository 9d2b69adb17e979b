#!/usr/bin/env bash
# Full resolution on CIFAR-10 enlarged to 128 px (docs/photos.md): BAIT fitted at a 32 px working
# size and drawn at 128 px, then `unlearnable check` against the 2,000 enlarged test images, with
# victims that resize (and RandomResizedCrop) to their own input size, after JPEG 90 / 75 and a
# 50% downscale. Usage: UNLEARNABLE_DATA=... bash experiments/photos-cifar128.sh [WORK_DIR [LOOK]]
# LOOK (default strong, the drawing docs/photos.md's table was measured with; photos' own default is
# invisible: see experiments/look-protection.sh for every look).
set -euo pipefail
work=${1:-runs/photos-cifar128}
look=${2:-strong}
mkdir -p "$work"
[ -d "$work/originals" ] || python experiments/enlarge_cifar.py "$work/originals" --size 128
[ -d "$work/bait" ] || unlearnable protect --data "$work/originals" --method bait --working-size 32 --look "$look" \
    --out "$work/bait"
[ -d "$work/check-bait" ] || unlearnable check "$work/bait" --data "$work/originals" --out "$work/check-bait"
cat "$work/check-bait/report.md"
