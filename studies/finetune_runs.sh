#!/usr/bin/env bash
# The fine-tune vs from-scratch experiments of docs/finetune.md (CPU, small networks, 3 seeds each).
# Usage: bash studies/finetune_runs.sh PAIR OUT_ROOT   (PAIR: pendulum | cartpole | pendulum-warmup | cartpole-warmup); 2 at a time.
set -euo pipefail
pair=$1; root=$2; mkdir -p "$root"
export OMP_NUM_THREADS=1
case $pair in
  pendulum)  # different observation spaces: InvertedPendulum (obs 4) -> InvertedDoublePendulum (obs 11)
    source=mrq-agents/mrq-InvertedPendulum-v4; env=InvertedDoublePendulum-v4; steps=15000; every=1500 ;;
  pendulum-warmup)
    source=mrq-agents/mrq-InvertedPendulum-v4; env=InvertedDoublePendulum-v4; steps=15000; every=1500 ;;
  cartpole|cartpole-warmup)  # same spaces: DMC cartpole-balance -> cartpole-swingup
    source=mrq-agents/mrq-dmc-cartpole-balance; env=dm_control/cartpole-swingup-v0; steps=15000; every=1500 ;;
esac
for seed in 0 1 2; do
  if [ "${pair%-warmup}" != "$pair" ]; then  # the warm-up study: fine-tune with the from-scratch warm-up (1,000)
    echo "mrq finetune $source --env $env --steps $steps --eval-every $every --eval-episodes 5 --seed $seed --warmup-steps 1000 --warmup-actions random --encoder-lr-scale 1 --out $root/${pair%-warmup}-finetune1000-s$seed"
    continue
  fi
  echo "mrq train $env --preset small --steps $steps --eval-every $every --eval-episodes 5 --seed $seed --out $root/$pair-scratch-s$seed"
  echo "mrq finetune $source --env $env --steps $steps --eval-every $every --eval-episodes 5 --seed $seed --warmup-actions random --encoder-lr-scale 1 --out $root/$pair-finetune-s$seed"
done | xargs -P 2 -I{} sh -c '{} > /dev/null 2>&1 || echo "failed: {}"'
