#!/usr/bin/env bash
# The body of cluster/train.sbatch and cluster/train_multinode.sbatch (they exec it inside a job):
#
#   job.sh single|multi [python -m mjxmimic.train arguments...]
#
# - The run directory is stable across requeues: $MJXMIMIC_RUN_DIR, or --out/--resume DIR among the
#   arguments, else ${SCRATCH:-submit dir}/mjxmimic/runs/<job name>-<job id> (a requeued job keeps
#   its id). When it already holds a run (config.yaml) the job resumes it: --resume DIR, leaving out
#   the flags only a new run takes (--env, --set, --num-envs, --seed); otherwise a new run, --out DIR.
# - SIGUSR1 to this script (#SBATCH --signal=B:USR1@300: the time limit is 5 minutes away) is
#   forwarded to training, which checkpoints its last iteration and exits; then the job requeues
#   itself (scontrol requeue) and the next start resumes. At most $MJXMIMIC_MAX_REQUEUES (20) times.
# - SIGTERM (scancel) is forwarded too: the run checkpoints and the job ends without a requeue.
# - MJXMIMIC_PYTHON (default: python) is the interpreter command, word-split, e.g.
#   "apptainer exec --nv $SCRATCH/mjxmimic.sif python" to train in the container.
set -uo pipefail

die() { echo "job.sh: $*" >&2; exit 2; }

mode=${1:-}
[ "$mode" = single ] || [ "$mode" = multi ] || die "usage: job.sh single|multi [train args...]"
shift
[ -n "${SLURM_JOB_ID:-}" ] || die "runs inside a SLURM job: sbatch cluster/train.sbatch --env NAME ..."

export MJXMIMIC_PYTHON=${MJXMIMIC_PYTHON:-python}
base=${SCRATCH:-${SLURM_SUBMIT_DIR:-$PWD}}/mjxmimic
run_dir=${MJXMIMIC_RUN_DIR:-$base/runs/${SLURM_JOB_NAME:-mjxmimic}-$SLURM_JOB_ID}
# The JAX compilation cache on scratch (home quotas are small); a resumed run skips the compile.
[ -n "${SCRATCH:-}" ] && export MJXMIMIC_CACHE=${MJXMIMIC_CACHE:-$SCRATCH/mjxmimic/jax-cache}

args=()
new_only=()
while (($#)); do
    case $1 in
        --out | --resume) (($# >= 2)) || die "$1 needs a directory"; run_dir=$2; shift 2 ;;
        --out=* | --resume=*) run_dir=${1#*=}; shift ;;
        --env | --set | --num-envs | --seed) (($# >= 2)) || die "$1 needs a value"; new_only+=("$1" "$2"); shift 2 ;;
        --env=* | --set=* | --num-envs=* | --seed=*) new_only+=("$1"); shift ;;
        *) args+=("$1"); shift ;;
    esac
done
restarts=${SLURM_RESTART_COUNT:-0}
if [ -f "$run_dir/config.yaml" ]; then
    echo "job.sh: job $SLURM_JOB_ID (start $((restarts + 1))): $run_dir holds a run; resuming it"
    ((${#new_only[@]})) && echo "job.sh: not passed on (the run's config.yaml holds them): ${new_only[*]}"
    train=(--resume "$run_dir" "${args[@]}")
else
    echo "job.sh: job $SLURM_JOB_ID (start $((restarts + 1))): new run in $run_dir"
    mkdir -p "$(dirname "$run_dir")"
    train=("${new_only[@]}" --out "$run_dir" "${args[@]}")
fi

if [ "$mode" = multi ]; then
    # One process per task; process 0's node is the coordinator. The port is derived from the job
    # id so two jobs sharing a node do not collide ($MJXMIMIC_PORT overrides).
    head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
    port=${MJXMIMIC_PORT:-$((20000 + SLURM_JOB_ID % 20000))}
    echo "job.sh: $SLURM_NTASKS processes on $SLURM_JOB_NUM_NODES nodes, coordinator $head_node:$port"
    # srun forwards the signals it gets (USR1, TERM) to every task.
    srun --kill-on-bad-exit=1 bash -c 'exec $MJXMIMIC_PYTHON -m mjxmimic.train "$@" --process-id "$SLURM_PROCID"' \
        _ "${train[@]}" --coordinator "$head_node:$port" --num-processes "$SLURM_NTASKS" &
else
    # shellcheck disable=SC2086  # MJXMIMIC_PYTHON may be several words
    $MJXMIMIC_PYTHON -m mjxmimic.train "${train[@]}" &
fi
pid=$!

on_usr1() {
    echo "job.sh: SIGUSR1 (time limit near): checkpointing, then requeueing job $SLURM_JOB_ID"
    kill -USR1 "$pid" 2>/dev/null
    wait "$pid"
    local status=$?
    # 0: checkpointed and exited; 128+USR1: the signal came before training set its handler (still
    # compiling), so the last periodic checkpoint is where the next start resumes.
    if [ "$status" != 0 ] && [ "$status" != $((128 + $(kill -l USR1))) ]; then
        echo "job.sh: training exited with status $status; not requeueing"
        exit "$status"
    fi
    if ((restarts >= ${MJXMIMIC_MAX_REQUEUES:-20})); then
        echo "job.sh: $restarts requeues already (MJXMIMIC_MAX_REQUEUES); not requeueing. Continue with: " \
            "MJXMIMIC_RUN_DIR=$run_dir sbatch ..."
        exit 0
    fi
    scontrol requeue "$SLURM_JOB_ID" || { echo "job.sh: scontrol requeue failed"; exit 1; }
    exit 0
}
on_term() {
    echo "job.sh: SIGTERM: checkpointing and stopping"
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
    exit $?
}
trap on_usr1 USR1
trap on_term TERM
# A trapped signal interrupts `wait`; the handlers then wait themselves and exit.
wait "$pid"
