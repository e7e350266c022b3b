#!/usr/bin/env bash
# The paper-size fine-tune study of docs/finetune.md: one run per call, resumable across sessions.
# Usage: bash studies/finetune_study.sh PAIR CONDITION SEED STEPS ROOT
#   PAIR:      walker (mrq-agents/mrq-walker -> Dmc-walker-run) | cheetah (mrq-agents/mrq-HalfCheetah-v4 -> Dmc-cheetah-run)
#   CONDITION: scratch | random (the paper's uniform warm-up) | policy (the pretrained policy's warm-up)
#              | hold (random, the policy held 2,500 updates) | freeze (random, encoder frozen)
#              | short (random, a 1,000-step warm-up) | convert (random, --critic-units convert)
#              | policy-convert | policy-hold | policy-freeze
#              | policy-hold-encoder (policy, the encoder held 2,500 updates)
#              | policy-slow-encoder (policy, the encoder at a tenth of its learning rate: `mrq finetune`'s default)
#              Every condition names all the options it was measured with, so the defaults can change under it.
#   STEPS:     env steps to reach; a run folder that already holds a checkpoint is resumed up to STEPS.
# Every run: paper config, evaluation every 1,000 steps over 5 episodes, one torch thread, checkpoint every 5,000.
set -euo pipefail
pair=$1; condition=$2; seed=$3; steps=$4; root=$5
case $pair in
  walker)  source=mrq-agents/mrq-walker; env=Dmc-walker-run ;;
  cheetah) source=mrq-agents/mrq-HalfCheetah-v4; env=Dmc-cheetah-run ;;
  *) echo "unknown pair $pair: walker or cheetah" >&2; exit 2 ;;
esac
case $condition in
  scratch) options=() ;;
  random)  options=(--warmup-actions random --encoder-lr-scale 1) ;;
  policy)  options=(--warmup-actions policy --encoder-lr-scale 1) ;;
  hold)    options=(--warmup-actions random --encoder-lr-scale 1 --hold-policy 2500) ;;
  freeze)  options=(--warmup-actions random --freeze encoder) ;;
  short)   options=(--warmup-actions random --encoder-lr-scale 1 --warmup-steps 1000) ;;
  convert) options=(--warmup-actions random --encoder-lr-scale 1 --critic-units convert) ;;
  policy-convert) options=(--warmup-actions policy --encoder-lr-scale 1 --critic-units convert) ;;
  policy-hold) options=(--warmup-actions policy --encoder-lr-scale 1 --hold-policy 2500) ;;
  policy-freeze) options=(--warmup-actions policy --freeze encoder) ;;
  policy-hold-encoder) options=(--warmup-actions policy --encoder-lr-scale 1 --hold-encoder 2500) ;;
  policy-slow-encoder) options=(--warmup-actions policy --encoder-lr-scale 0.1) ;;  # the default since 2026-12-02
  *) echo "unknown condition $condition" >&2; exit 2 ;;
esac
out=$root/$pair-$condition-s$seed
common=(--steps "$steps" --seed "$seed" --eval-every 1000 --eval-episodes 5 --threads 1 --checkpoint-every 5000
        --device cpu --out "$out")
mkdir -p "$root"
if [ -f "$out/checkpoint.safetensors" ]; then
  set -x; exec mrq train "$env" --resume "${common[@]}"
elif [ "$condition" = scratch ]; then
  set -x; exec mrq train "$env" "${common[@]}"
else
  set -x; exec mrq finetune "$source" --env "$env" "${options[@]}" "${common[@]}"
fi
