#!/usr/bin/env bash
# The two-tower loss study behind docs/loss_study.md, on the validation split only: the
# ranking hinge at three margins, the align term on top of it at two, the other objectives
# at one margin each, the align term alone and the softmax (cross-entropy) for comparison.
# Seeds 0, 1, 2; 30 epochs per run (the default is 100). The same grids as `doodlelab run`'s
# sweep/loss_* folders (src/doodlelab/pipeline/plan.py, LOSS_STUDY). Needs the course data
# ($DOODLELAB_DATA or --data); 33 runs, each about 10 s on an idle 2-core machine.
set -euo pipefail
OUT=${1:-runs/loss_study}
T="doodlelab sweep --model two_tower --seeds 0,1,2"
E="--grid train.epochs=[30]"  # last, as the pipeline orders the grid
$T --out "$OUT/loss_hinge_rank"       --grid 'two_tower.loss=["hinge_rank"]'    --grid 'two_tower.margin=[0.1,0.3,1.0]' --grid 'two_tower.align_weight=[0.0]' $E
$T --out "$OUT/loss_hinge_rank_align" --grid 'two_tower.loss=["hinge_rank"]'    --grid 'two_tower.margin=[0.1,1.0]' --grid 'two_tower.align_weight=[0.5]' $E
$T --out "$OUT/loss_hardest_hinge"    --grid 'two_tower.loss=["hardest_hinge"]' --grid 'two_tower.margin=[0.3]' --grid 'two_tower.align_weight=[0.0]' $E
$T --out "$OUT/loss_triplet"          --grid 'two_tower.loss=["triplet"]'       --grid 'two_tower.margin=[0.5]' --grid 'two_tower.align_weight=[0.0]' $E
$T --out "$OUT/loss_cosine_contrastive" --grid 'two_tower.loss=["cosine_contrastive"]' --grid 'two_tower.margin=[0.0]' --grid 'two_tower.align_weight=[0.0]' $E
$T --out "$OUT/loss_align_only"       --grid 'two_tower.loss=["align_only"]'    --grid 'two_tower.align_weight=[0.0]' $E
$T --out "$OUT/loss_softmax_ce"       --grid 'two_tower.loss=["softmax_ce"]'    --grid 'two_tower.align_weight=[0.0,0.5]' $E
