#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to test cluster/*.sbatch for real (tests/test_slurm.py).
#
#   sudo cluster/local_slurm.sh start    # install slurm-wlm + munge if missing (Debian/Ubuntu, apt),
#                                        # write /etc/slurm/slurm.conf, start munged, slurmctld, slurmd,
#                                        # wait until sinfo shows the node idle
#   sudo cluster/local_slurm.sh stop     # stop the three daemons
#   cluster/local_slurm.sh status        # sinfo, or exit 1 when no controller answers
#
# Root only, and meant for a throwaway machine (a CI runner, a VM): it writes /etc/slurm/slurm.conf
# and /etc/munge/munge.key when they are missing or were written by this script. Daemons and jobs run
# as root; no cgroups (proctrack/linuxproc), no accounting. The node's CPUs and memory come
# from `slurmd -C`. Exit status: 0 when the cluster is up, 1 with one line saying why not.
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARK="# written by mjxmimic cluster/local_slurm.sh"
LOG_DIR=/var/log/slurm
SPOOL=/var/spool/mjxmimic-slurm  # this cluster's own state, apart from any other SLURM's
WAIT_S=${LOCAL_SLURM_WAIT_S:-60}

die() { echo "local_slurm: $*" >&2; exit 1; }

have_slurm() { command -v sbatch >/dev/null && command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
               && command -v munged >/dev/null; }

install() {
    have_slurm && return 0
    command -v apt-get >/dev/null || die "slurm is not installed and there is no apt-get to install it"
    echo "local_slurm: installing slurm-wlm munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # An install from a stale package list fails on moved packages: update once, then retry.
    if ! apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null 2>&1; then
        apt-get update -q >/dev/null 2>&1 || die "apt-get update failed (no network to the package mirror?)"
        apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null 2>&1 \
            || die "apt-get install slurm-wlm munge failed"
    fi
    have_slurm || die "slurm-wlm installed but sbatch/slurmctld/slurmd/munged are not on PATH"
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
    if [ ! -s /etc/munge/munge.key ]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
    if id munge >/dev/null 2>&1; then
        runuser -u munge -- munged --force
    else
        munged --force
    fi
    for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0; sleep 0.25; done
    die "munged did not start (see /var/log/munge/munged.log)"
}

write_conf() {
    if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        echo "local_slurm: keeping the existing $CONF (not written by this script)"
        return 0
    fi
    local host node
    host=$(hostname -s)
    # The first line of `slurmd -C` is this node's NodeName=... CPUs=... RealMemory=... as slurmd sees it.
    node=$(slurmd -C | head -n 1)
    [[ $node == NodeName=* ]] || die "slurmd -C printed no node line: $node"
    mkdir -p "$CONF_DIR" "$LOG_DIR" "$SPOOL/slurmctld" "$SPOOL/slurmd"
    cat >"$CONF" <<EOF
$MARK
ClusterName=mjxmimic-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# The tests requeue a job: a requeued job may start again once its credential expired (120 s by
# default); 10 s here, and a short scheduler pass, so it restarts within seconds.
AuthInfo=cred_expire=10
SchedulerParameters=sched_interval=2
MinJobAge=600
KillWait=30
StateSaveLocation=$SPOOL/slurmctld
SlurmdSpoolDir=$SPOOL/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

node_state() { sinfo -h -N -o %t 2>/dev/null | head -n 1; }

start() {
    [ "$(id -u)" = 0 ] || die "start needs root (it installs packages and starts daemons)"
    install
    start_munge
    write_conf
    pgrep -x slurmctld >/dev/null || slurmctld || die "slurmctld did not start (see $LOG_DIR/slurmctld.log)"
    pgrep -x slurmd >/dev/null || slurmd || die "slurmd did not start (see $LOG_DIR/slurmd.log)"
    local state=""
    for _ in $(seq $((WAIT_S * 2))); do
        state=$(node_state)
        case $state in
            idle|mix|alloc) echo "local_slurm: up ($(sinfo -h -N -o '%N %c CPUs %m MB %t'))"; return 0 ;;
            down*|drain*) scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 0.5
    done
    die "the node is not idle after ${WAIT_S}s (state '${state}'; see $LOG_DIR/slurmctld.log, $LOG_DIR/slurmd.log)"
}

stop() {
    local f pid
    for f in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
        [ -s "$f" ] || continue
        pid=$(cat "$f")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    done
    echo "local_slurm: stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) sinfo >/dev/null 2>&1 || die "no SLURM controller answers"; sinfo ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
