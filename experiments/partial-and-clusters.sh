#!/usr/bin/env bash
# Partial protection and cluster labels on the 5,000-image CIFAR-10 subset (docs/photos.md), with
# the fast pretrained victim (EfficientNet-Lite0, cpu preset) tested on 2,000 clean test images:
#  - BAIT and EM protecting 10, 25, 50 and 100% of every class's images, and 3 of the 10 classes;
#  - BAIT and EM fitted on pseudo-classes (--labels clusters:10, k-means on frozen ImageNet
#    features; also clusters:50) of a flat copy, judged by a victim trained with the TRUE labels.
# Usage: UNLEARNABLE_DATA=... bash experiments/partial-and-clusters.sh [WORK_DIR]
set -euo pipefail
d=${1:-runs/partial}
mkdir -p "$d"
ev="--data cifar10 --init imagenet --test-per-class 200"
for m in bait em; do
  [ -d "$d/$m" ] || unlearnable protect --data cifar10 --train-per-class 500 --method $m --out "$d/$m" --quiet
done
[ -d "$d/c32" ] || python experiments/enlarge_cifar.py "$d/c32" --size 32 --test-per-class 1
for m in bait em; do
  for k in 10 50; do
    name=$m-clusters$([ $k = 10 ] || echo $k)
    [ -d "$d/$name" ] || unlearnable protect --data "$d/c32" --labels clusters:$k --method $m --out "$d/$name" --quiet
    [ -d "$d/eval-$name" ] || unlearnable evaluate --train "$d/$name" $ev --out "$d/eval-$name" --quiet
  done
done
for m in bait em; do
  for f in 1.0 0.5 0.25 0.1; do
    [ -d "$d/eval-$m-$f" ] || unlearnable evaluate --train "$d/$m" $ev --protected-fraction $f --out "$d/eval-$m-$f" --quiet
  done
  [ -d "$d/eval-$m-3classes" ] || unlearnable evaluate --train "$d/$m" $ev --protected-classes airplane,automobile,bird --out "$d/eval-$m-3classes" --quiet
done
[ -d "$d/eval-clean" ] || unlearnable evaluate --train cifar10 --train-per-class 500 $ev --out "$d/eval-clean" --quiet
python experiments/partial_table.py "$d"
