#!/usr/bin/env bash
# The paper-size fine-tune study of docs/finetune.md: one run per call, resumable across sessions.
# Usage: bash docs/finetune_study.sh PAIR CONDITION SEED STEPS ROOT
#   PAIR:      walker (mrq-agents/mrq-walker -> Dmc-walker-run) | cheetah (mrq-agents/mrq-HalfCheetah-v4 -> Dmc-cheetah-run)
#   CONDITION: scratch | random (the paper's uniform warm-up) | policy (--warmup-actions policy)
#              | hold (--warmup-actions random --hold-policy 2500) | freeze (--warmup-actions random --freeze encoder)
#              | short (--warmup-actions random --warmup-steps 1000)
#              | convert (--warmup-actions random --critic-units convert)
#              | policy-convert (--warmup-actions policy --critic-units convert)
#              | policy-hold (--warmup-actions policy --hold-policy 2500)
#              | policy-freeze (--warmup-actions policy --freeze encoder)
#              | policy-hold-encoder (--warmup-actions policy --hold-encoder 2500)
#              | policy-slow-encoder (--warmup-actions policy --set enc_lr=1e-5: a tenth of the encoder's learning rate)
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
  random)  options=(--warmup-actions random) ;;
  policy)  options=(--warmup-actions policy) ;;
  hold)    options=(--warmup-actions random --hold-policy 2500) ;;
  freeze)  options=(--warmup-actions random --freeze encoder) ;;
  short)   options=(--warmup-actions random --warmup-steps 1000) ;;
  convert) options=(--warmup-actions random --critic-units convert) ;;
  policy-convert) options=(--warmup-actions policy --critic-units convert) ;;
  policy-hold) options=(--warmup-actions policy --hold-policy 2500) ;;
  policy-freeze) options=(--warmup-actions policy --freeze encoder) ;;
  policy-hold-encoder) options=(--warmup-actions policy --hold-encoder 2500) ;;
  policy-slow-encoder) options=(--warmup-actions policy --set enc_lr=1e-5) ;;
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
