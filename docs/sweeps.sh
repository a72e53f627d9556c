#!/usr/bin/env bash
# The validation sweeps behind docs/hyperparameters.md: one question at a time around
# the default configuration, two seeds each (seed = split + initial weights + batches).
# Needs the course data ($DOODLELAB_DATA or --data); about 25 minutes on one core.
set -euo pipefail
OUT=${1:-runs/sweeps}
D="doodlelab sweep --seeds 0,1"
$D --out "$OUT/default"
$D --out "$OUT/augment"  --grid 'augment.enabled=[false]'
$D --out "$OUT/shift"    --grid 'augment.shift=[1.0,3.0]'
$D --out "$OUT/affine"   --grid 'augment.integer_shift=[false]' --set augment.rotate=10 --set augment.scale=0.1
$D --out "$OUT/dropout"  --grid 'model.dropout=[0.0,0.3]'
$D --out "$OUT/wd"       --grid 'optim.weight_decay=[0.0,5e-4]'
$D --out "$OUT/hidden"   --grid 'model.hidden=[[256,128],[1024,512],[512,256,128]]'
$D --out "$OUT/lr"       --grid 'optim.lr=[0.02,0.1]'
$D --out "$OUT/batch"    --grid 'train.batch_size=[64,256]'
$D --out "$OUT/epochs"   --grid 'train.epochs=[50,150]'
$D --out "$OUT/act"      --grid 'model.activation=["tanh","leaky_relu"]'
doodlelab sweep --seeds 0,1,2,3,4 --out "$OUT/default5"

# The word-embedding (two-tower) model: its own knobs on the same validation split, as
# measured when its objective was a softmax cross-entropy (hence the --set); the
# objective itself is chosen by docs/loss_study.sh.
T="doodlelab sweep --model two_tower --set two_tower.loss=softmax_ce"
$T --seeds 0 --out "$OUT/two_tower" --grid 'two_tower.align_weight=[0.0,0.5,2.0]' --grid 'two_tower.logit_scale=[5.0,10.0,20.0]'
$T --seeds 1,2 --out "$OUT/two_tower_align" --grid 'two_tower.align_weight=[0.0,0.5,2.0]'
