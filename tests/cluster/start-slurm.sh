#!/usr/bin/env bash
# A one-node SLURM on this machine for the cluster tests (tests/cluster/, make test-cluster):
# munge, slurmctld and slurmd on localhost, select/cons_tres with the CPUs and memory that
# `slurmd -C` finds, no accounting, one partition. Installs the Debian packages where they are
# missing (root and apt-get), then waits until sinfo shows the node idle.
#
#   bash tests/cluster/start-slurm.sh     # a second call finds it running and returns at once
#
# Where SLURM cannot start it prints one line "start-slurm: ..." and exits 1; the cluster tests
# then skip. It never overwrites a slurm.conf that it did not write (a real cluster's).
set -uo pipefail

PARTITION=${FEWTUNE_SLURM_PARTITION:-local}
WAIT_S=${FEWTUNE_SLURM_WAIT_S:-60}
CONF=/etc/slurm/slurm.conf
MARK="# Written by fewtune's tests/cluster/start-slurm.sh (a one-node SLURM for the cluster tests)."
LOG_DIR=/var/log/slurm
START=$SECONDS

fail() {
    echo "start-slurm: SLURM not started: $*" >&2
    exit 1
}

node_state() { sinfo --noheader --partition "$PARTITION" --Node --format %t 2>/dev/null | head -n 1; }

if command -v sinfo >/dev/null && [ "$(node_state)" = idle ]; then
    echo "start-slurm: already running (partition $PARTITION idle)"
    exit 0
fi

[ "$(id -u)" = 0 ] || fail "needs root to install and start the daemons (run as root, or start SLURM yourself)"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sinfo >/dev/null \
    || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || fail "slurmctld, slurmd or munge is not installed and there is no apt-get"
    echo "start-slurm: installing slurmctld slurmd slurm-client munge (apt-get)"
    install_log=$(mktemp /tmp/start-slurm-apt.XXXXXX)
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -q && apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge; } \
        >"$install_log" 2>&1 || fail "apt-get install failed: $(tail -n 1 "$install_log") (log: $install_log)"
    echo "start-slurm: installed in $((SECONDS - START)) s"
fi

if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    fail "$CONF exists and was not written by this script; the cluster tests need partition '$PARTITION' idle"
fi

# munge: the key the Debian package made (else a new one), then the daemon as its own user.
mkdir -p /run/munge /var/lib/munge /var/log/munge /etc/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge /etc/munge
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none || fail "cannot write a munge key"
fi
chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged || fail "munged did not start (see /var/log/munge/munged.log)"
    sleep 1
    munge -n | unmunge >/dev/null 2>&1 || fail "munge does not work: $(tail -n 1 /var/log/munge/munged.log 2>/dev/null)"
fi

# The node as slurmd sees it (CPUs, sockets, cores, memory); 95% of its memory so that a
# fluctuating reading never drains the node.
NODE=$(hostname -s)
HARDWARE=$(slurmd -C | head -n 1) || fail "slurmd -C cannot read this machine's hardware"
MEMORY=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$HARDWARE")
HARDWARE=$(sed "s/RealMemory=[0-9]*/RealMemory=$((MEMORY * 95 / 100))/" <<<"$HARDWARE")

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd "$LOG_DIR"
NEW_CONF=$(cat <<EOF
$MARK
ClusterName=fewtune
SlurmctldHost=$NODE
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# No cgroups (containers often have none to give): processes tracked through /proc.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
# The scheduler looks at new jobs often: the tests' jobs start within a second.
SchedulerParameters=sched_interval=2,bf_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# Jobs may be requeued (scontrol requeue, submitit's requeue on its pre-timeout signal).
JobRequeue=1
KillWait=30
MinJobAge=600
$HARDWARE State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=7-00:00:00 State=UP
EOF
)
if [ "$(cat "$CONF" 2>/dev/null)" != "$NEW_CONF" ]; then
    echo "$NEW_CONF" >"$CONF"
    # A changed config: daemons of an older one (started by this script) start again.
    for pidfile in /run/slurmctld.pid /run/slurmd.pid; do
        [ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null && sleep 1
    done
fi

pgrep -x slurmctld >/dev/null || slurmctld || fail "slurmctld did not start: $(tail -n 1 $LOG_DIR/slurmctld.log)"
pgrep -x slurmd >/dev/null || slurmd || fail "slurmd did not start: $(tail -n 1 $LOG_DIR/slurmd.log)"

state=""
for _ in $(seq "$WAIT_S"); do
    state=$(node_state)
    [ "$state" = idle ] && break
    case "$state" in  # a node left down or drained by an earlier start
        down* | drain* | drng*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null ;;
    esac
    sleep 1
done
[ "$state" = idle ] || fail "node $NODE is '${state:-not listed}' after ${WAIT_S} s: $(tail -n 1 $LOG_DIR/slurmd.log)"
echo "start-slurm: partition $PARTITION idle on $NODE ($(sed 's/ *Boards.*RealMemory=/ CPUs, RealMemory=/; s/NodeName=[^ ]* CPUs=//' <<<"$HARDWARE") MB) after $((SECONDS - START)) s"
