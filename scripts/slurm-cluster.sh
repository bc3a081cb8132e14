#!/usr/bin/env bash
# -----------------------------------------------------------------------------
# slurm-cluster.sh - a real, single-node Slurm cluster on this machine.
#
# Used by nemotron's integration tests and CI to submit jobs (sbatch, srun,
# squeue, sacct, scancel, NeMo-Run's Slurm executor) against a genuine Slurm,
# without systemd (plain containers, CI runners, sandboxes).
#
# Usage:
#   scripts/slurm-cluster.sh start    # install (if needed), configure, start, wait until ready
#   scripts/slurm-cluster.sh stop     # stop every daemon this script started
#   scripts/slurm-cluster.sh restart  # stop + start
#   scripts/slurm-cluster.sh status   # daemon states + sinfo; exit 0 iff ready
#   scripts/slurm-cluster.sh logs     # tail of every daemon log
#
# What `start` does (each step is idempotent, so running it twice is fine):
#   1. Installs the Debian/Ubuntu packages munge, mariadb-server, slurmdbd,
#      slurmctld, slurmd and slurm-client if any is missing (services are not
#      auto-started by apt: a temporary policy-rc.d denies that).
#   2. Writes /etc/slurm/slurm.conf and /etc/slurm/slurmdbd.conf (mode 600).
#      Clients find slurm.conf there without SLURM_CONF; exporting
#      SLURM_CONF=/etc/slurm/slurm.conf does no harm.
#      All state, spool, pid and log files live under one prefix directory,
#      $NEMOTRON_SLURM_PREFIX (default /var/tmp/nemotron-slurm).
#   3. Starts, in the background and each with a pid file under
#      $PREFIX/run, whichever daemons are not running yet:
#        munged (as user munge) -> mariadbd (own datadir, 127.0.0.1 only)
#        -> slurmdbd (accounting, so sacct works) -> slurmctld -> slurmd.
#      If slurm.conf changed while slurmctld/slurmd ran, both are restarted.
#   4. Waits (up to $NEMOTRON_SLURM_TIMEOUT s, default 60) until the node is
#      usable in `sinfo` (DRAIN/DOWN nodes are resumed) and `sacct` answers;
#      on timeout it exits non-zero and prints the tail of the relevant log.
#
# Cluster layout: ClusterName nemotron-local, one node (short hostname,
# address 127.0.0.1, all CPUs, ~95% of RAM), one partition `debug`
# (default, no time limit), SelectType=select/cons_tres with CR_CPU so
# several 1-CPU jobs can run at once. Only localhost is ever contacted:
# slurmctld 6817, slurmd 6818, slurmdbd 6819, MariaDB 127.0.0.1:3306.
#
# Environment overrides:
#   NEMOTRON_SLURM_PREFIX   state/log directory   (default /var/tmp/nemotron-slurm)
#   NEMOTRON_SLURM_TIMEOUT  readiness timeout, s  (default 60)
#   NEMOTRON_SLURM_DB_PORT  MariaDB TCP port      (default 3306)
#   NEMOTRON_SLURM_CLUSTER  Slurm ClusterName     (default nemotron-local)
#
# Needs root (daemons run as root, SlurmUser=root); re-executes itself with
# sudo when run as another user.
# -----------------------------------------------------------------------------
set -euo pipefail

PREFIX="${NEMOTRON_SLURM_PREFIX:-/var/tmp/nemotron-slurm}"
READY_TIMEOUT="${NEMOTRON_SLURM_TIMEOUT:-60}"
DB_PORT="${NEMOTRON_SLURM_DB_PORT:-3306}"
CLUSTER_NAME="${NEMOTRON_SLURM_CLUSTER:-nemotron-local}"
PARTITION="debug"

CONF_DIR="/etc/slurm"
SLURM_CONF_FILE="$CONF_DIR/slurm.conf"
DBD_CONF_FILE="$CONF_DIR/slurmdbd.conf"
export SLURM_CONF="$SLURM_CONF_FILE"

RUN_DIR="$PREFIX/run"
LOG_DIR="$PREFIX/log"
CTLD_STATE_DIR="$PREFIX/spool/slurmctld"
SLURMD_SPOOL_DIR="$PREFIX/spool/slurmd"
DB_DATA_DIR="$PREFIX/mysql"
DB_RUN_DIR="$PREFIX/mysql-run" # owned by mysql: socket and its own pid file
DB_SOCKET="$DB_RUN_DIR/mysqld.sock"

DB_NAME="slurm_acct_db"
DB_USER="slurm"
DB_PASS="nemotron-slurm" # local-only database, bound to 127.0.0.1

MUNGE_KEY="/etc/munge/munge.key"
PACKAGES=(munge mariadb-server slurmdbd slurmctld slurmd slurm-client)
# Start order; stop runs in reverse.
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)

NODE_NAME="$(hostname -s)"

# --------------------------------------------------------------------------- helpers

log() { printf '[slurm-cluster] %s\n' "$*"; }
warn() { printf '[slurm-cluster] WARNING: %s\n' "$*" >&2; }

die() {
    printf '[slurm-cluster] ERROR: %s\n' "$1" >&2
    shift
    local f
    for f in "$@"; do
        if [[ -s "$f" ]]; then
            printf '[slurm-cluster] ---- last lines of %s ----\n' "$f" >&2
            tail -n 30 "$f" >&2 || true
        fi
    done
    exit 1
}

ensure_root() {
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "must run as root (sudo not found)"
        exec sudo -E bash "$(readlink -f "$0")" "$@"
    fi
}

# wait_for TIMEOUT_S COMMAND...: retry COMMAND every 0.5 s; 1 on timeout.
wait_for() {
    local timeout="$1"
    shift
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

pid_file() { echo "$RUN_DIR/$1.pid"; }

# alive PID: the process exists and is not a zombie (an init that is slow to
# reap would otherwise keep it visible in /proc after it exited).
alive() {
    local state
    state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
    [[ -n "$state" && "$state" != Z && "$state" != X ]]
}
daemon_log() { echo "$LOG_DIR/$1.log"; }

# daemon_pid NAME: print the pid of our running NAME daemon; 1 if not running.
daemon_pid() {
    local name="$1" pf pid comm
    pf="$(pid_file "$name")"
    [[ -r "$pf" ]] || return 1
    pid="$(tr -dc '0-9' <"$pf")"
    [[ -n "$pid" ]] && alive "$pid" || return 1
    comm="$(cat "/proc/$pid/comm" 2>/dev/null || true)"
    [[ "$comm" == "$name" ]] || return 1
    echo "$pid"
}

is_running() { daemon_pid "$1" >/dev/null; }

# launch NAME COMMAND...: run COMMAND (which must stay in the foreground)
# detached from this shell, with stdio going to $LOG_DIR/NAME.out (so callers
# capturing our output never hang), and record its pid.
launch() {
    local name="$1"
    shift
    setsid "$@" </dev/null >>"$LOG_DIR/$name.out" 2>&1 &
    echo "$!" >"$(pid_file "$name")"
    sleep 0.2
    is_running "$name" || die "$name exited right after start" \
        "$LOG_DIR/$name.out" "$(daemon_log "$name")"
    log "started $name (pid $(daemon_pid "$name"))"
}

# stop_daemon NAME: TERM (then KILL after 20 s) the daemon from our pid file.
stop_daemon() {
    local name="$1" pid
    if pid="$(daemon_pid "$name")"; then
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 20))
        while alive "$pid" && ((SECONDS < deadline)); do
            sleep 0.2
        done
        if alive "$pid"; then
            warn "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped $name (pid $pid)"
    fi
    rm -f "$(pid_file "$name")"
}

# --------------------------------------------------------------------------- install

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0

    log "installing: ${missing[*]}"
    # Keep apt from starting the services itself (we start them below, our way).
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        own_policy=1
    fi
    local rc=0
    {
        apt-get -o DPkg::Lock::Timeout=300 update -q &&
            DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
                install -y -q "${missing[@]}"
    } >"$PREFIX/apt.log" 2>&1 || rc=$?
    ((own_policy)) && rm -f "$policy"
    ((rc == 0)) || die "apt-get install failed (exit $rc)" "$PREFIX/apt.log"
}

# --------------------------------------------------------------------------- config

prepare_dirs() {
    mkdir -p "$PREFIX" "$RUN_DIR" "$LOG_DIR" "$CTLD_STATE_DIR" "$SLURMD_SPOOL_DIR" \
        "$DB_DATA_DIR" "$DB_RUN_DIR" "$CONF_DIR"
    chmod 755 "$PREFIX" # mysql must traverse it
    chown mysql:mysql "$DB_DATA_DIR" "$DB_RUN_DIR"
    chmod 750 "$DB_DATA_DIR"
    chmod 755 "$DB_RUN_DIR"
    # Logs written by daemons that drop root: pre-create them for their user.
    touch "$(daemon_log mariadbd)" "$(daemon_log munged)"
    chown mysql:mysql "$(daemon_log mariadbd)"
    chown munge:munge "$(daemon_log munged)"
}

real_memory_mb() {
    local kb
    kb="$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
    echo $((kb / 1024 * 95 / 100))
}

render_slurm_conf() {
    cat <<EOF
# Generated by nemotron scripts/slurm-cluster.sh -- do not edit, re-run it.
ClusterName=$CLUSTER_NAME
SlurmctldHost=$NODE_NAME(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
AuthInfo=cred_expire=10
CredType=cred/munge

StateSaveLocation=$CTLD_STATE_DIR
SlurmdSpoolDir=$SLURMD_SPOOL_DIR
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$(daemon_log slurmctld)
SlurmdLogFile=$(daemon_log slurmd)
SlurmctldDebug=info
SlurmdDebug=info

# No cgroups here: the cgroup default drains the node.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true

SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
PreemptType=preempt/none

ReturnToService=2
KillWait=5
InactiveLimit=0
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=60
Waittime=0

AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
JobCompType=jobcomp/none

NodeName=$NODE_NAME NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$(real_memory_mb) State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE_NAME Default=YES MaxTime=INFINITE State=UP
EOF
}

render_slurmdbd_conf() {
    cat <<EOF
# Generated by nemotron scripts/slurm-cluster.sh -- do not edit, re-run it.
AuthType=auth/munge
DbdHost=$NODE_NAME
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
DebugLevel=info
LogFile=$(daemon_log slurmdbd)
PidFile=$RUN_DIR/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF
}

# write_if_changed FILE MODE CONTENT: 0 if FILE was (re)written, 1 if unchanged.
write_if_changed() {
    local file="$1" mode="$2" content="$3"
    if [[ -f "$file" ]] && [[ "$(cat "$file")" == "$content" ]]; then
        chmod "$mode" "$file"
        return 1
    fi
    local tmp
    tmp="$(mktemp "$file.XXXXXX")"
    printf '%s\n' "$content" >"$tmp"
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$file"
    log "wrote $file"
    return 0
}

SLURM_CONF_CHANGED=0
DBD_CONF_CHANGED=0

write_configs() {
    SLURM_CONF_CHANGED=0
    DBD_CONF_CHANGED=0
    if write_if_changed "$SLURM_CONF_FILE" 644 "$(render_slurm_conf)"; then
        SLURM_CONF_CHANGED=1
    fi
    if write_if_changed "$DBD_CONF_FILE" 600 "$(render_slurmdbd_conf)"; then
        DBD_CONF_CHANGED=1
    fi
    chown root:root "$DBD_CONF_FILE"
}

# --------------------------------------------------------------------------- munge

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    if [[ ! -s "$MUNGE_KEY" ]]; then
        log "creating $MUNGE_KEY"
        mkdir -p "$(dirname "$MUNGE_KEY")"
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --keyfile="$MUNGE_KEY" --force
        else
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1 count=1024 status=none
        fi
    fi
    chown munge:munge "$(dirname "$MUNGE_KEY")" "$MUNGE_KEY"
    chmod 700 "$(dirname "$MUNGE_KEY")"
    chmod 600 "$MUNGE_KEY"
    install -d -o munge -g munge -m 755 /run/munge
    install -d -o munge -g munge -m 700 /var/log/munge
    install -d -o munge -g munge -m 711 /var/lib/munge

    if is_running munged; then
        return 0
    fi
    if munge_works; then
        log "munged already running (not started by this script); using it"
        return 0
    fi
    launch munged setpriv --reuid=munge --regid=munge --init-groups \
        /usr/sbin/munged --foreground --log-file="$(daemon_log munged)"
    wait_for 15 munge_works ||
        die "munged did not come up" "$LOG_DIR/munged.out" "$(daemon_log munged)"
}

# --------------------------------------------------------------------------- mariadb

db_sql() { mariadb --no-defaults --socket="$DB_SOCKET" -uroot -N -B -e "$1"; }
db_works() { db_sql 'SELECT 1'; }

start_mariadb() {
    if [[ ! -d "$DB_DATA_DIR/mysql" ]]; then
        log "initialising MariaDB data directory $DB_DATA_DIR"
        mariadb-install-db --no-defaults --user=mysql --datadir="$DB_DATA_DIR" \
            --auth-root-authentication-method=socket --skip-test-db \
            >"$LOG_DIR/mariadb-install-db.log" 2>&1 ||
            die "mariadb-install-db failed" "$LOG_DIR/mariadb-install-db.log"
    fi
    if ! is_running mariadbd; then
        launch mariadbd /usr/sbin/mariadbd --no-defaults --user=mysql \
            --datadir="$DB_DATA_DIR" --socket="$DB_SOCKET" \
            --pid-file="$DB_RUN_DIR/mariadbd.pid" --log-error="$(daemon_log mariadbd)" \
            --bind-address=127.0.0.1 --port="$DB_PORT" --skip-name-resolve \
            --innodb-buffer-pool-size=256M --innodb-lock-wait-timeout=900
    fi
    wait_for "$READY_TIMEOUT" db_works ||
        die "MariaDB did not answer on $DB_SOCKET" "$(daemon_log mariadbd)" "$LOG_DIR/mariadbd.out"
    local host
    for host in localhost 127.0.0.1; do
        db_sql "CREATE USER IF NOT EXISTS '$DB_USER'@'$host' IDENTIFIED BY '$DB_PASS';
                ALTER USER '$DB_USER'@'$host' IDENTIFIED BY '$DB_PASS';
                GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_USER'@'$host';" >/dev/null
    done
    db_sql "CREATE DATABASE IF NOT EXISTS \`$DB_NAME\`; FLUSH PRIVILEGES;" >/dev/null
}

# --------------------------------------------------------------------------- slurm

dbd_works() { sacctmgr -n -P list cluster format=cluster; }
ctld_works() { scontrol ping | grep -q 'is UP'; }
sacct_works() { sacct -n -X -P -S now-1hour --format=JobID; }

start_slurmdbd() {
    if ((DBD_CONF_CHANGED)) && is_running slurmdbd; then
        log "slurmdbd.conf changed; restarting slurmdbd"
        stop_daemon slurmdbd
    fi
    is_running slurmdbd || launch slurmdbd /usr/sbin/slurmdbd -D
    wait_for "$READY_TIMEOUT" dbd_works ||
        die "slurmdbd did not answer" "$(daemon_log slurmdbd)" "$LOG_DIR/slurmdbd.out"
}

start_slurmctld_and_slurmd() {
    if ((SLURM_CONF_CHANGED)) && { is_running slurmctld || is_running slurmd; }; then
        log "slurm.conf changed; restarting slurmctld and slurmd"
        stop_daemon slurmd
        stop_daemon slurmctld
    fi
    is_running slurmctld || launch slurmctld /usr/sbin/slurmctld -D
    wait_for "$READY_TIMEOUT" ctld_works ||
        die "slurmctld did not answer" "$(daemon_log slurmctld)" "$LOG_DIR/slurmctld.out"
    is_running slurmd || launch slurmd /usr/sbin/slurmd -D -N "$NODE_NAME"
}

# node_state: compact state of our node as sinfo reports it (e.g. idle, mixed, drained, idle*).
node_state() { sinfo -h -n "$NODE_NAME" -o '%T' 2>/dev/null | head -n 1; }

node_usable() {
    case "$(node_state)" in
        idle | mixed | allocated | completing) return 0 ;;
        *) return 1 ;;
    esac
}

wait_until_ready() {
    local deadline=$((SECONDS + READY_TIMEOUT)) state
    while :; do
        state="$(node_state || true)"
        case "$state" in
            drain* | down* | fail* | *drain*)
                log "node $NODE_NAME is '$state'; resuming it"
                scontrol update nodename="$NODE_NAME" state=resume >/dev/null 2>&1 || true
                ;;
        esac
        if node_usable && sacct_works >/dev/null 2>&1; then
            return 0
        fi
        if ((SECONDS >= deadline)); then
            local reason
            reason="$(sinfo -h -n "$NODE_NAME" -o '%T %E' 2>&1 || true)"
            die "cluster not ready after ${READY_TIMEOUT}s (node: ${reason:-unknown})" \
                "$(daemon_log slurmd)" "$(daemon_log slurmctld)" "$(daemon_log slurmdbd)"
        fi
        sleep 0.5
    done
}

# --------------------------------------------------------------------------- commands

cmd_start() {
    ensure_root start
    mkdir -p "$PREFIX"
    install_packages
    prepare_dirs
    write_configs
    start_munge
    start_mariadb
    start_slurmdbd
    start_slurmctld_and_slurmd
    wait_until_ready
    log "started: cluster '$CLUSTER_NAME', node $NODE_NAME ($(node_state)), partition $PARTITION"
    log "hint: export SLURM_CONF=$SLURM_CONF_FILE"
}

cmd_stop() {
    ensure_root stop
    local i
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        stop_daemon "${DAEMONS[i]}"
    done
    log "stopped"
}

cmd_restart() {
    ensure_root restart
    cmd_stop
    cmd_start
}

cmd_status() {
    local name pid ready=0
    for name in "${DAEMONS[@]}"; do
        if pid="$(daemon_pid "$name")"; then
            printf '%-10s running (pid %s)\n' "$name" "$pid"
        elif [[ "$name" == munged ]] && command -v munge >/dev/null 2>&1 && munge_works; then
            printf '%-10s running (not started by this script)\n' "$name"
        else
            printf '%-10s stopped\n' "$name"
            ready=1
        fi
    done
    if command -v sinfo >/dev/null 2>&1 && [[ -f "$SLURM_CONF_FILE" ]]; then
        echo "--- sinfo"
        sinfo 2>&1 || ready=1
        node_usable || ready=1
        sacct_works >/dev/null 2>&1 || { echo "sacct: not working"; ready=1; }
    else
        echo "slurm not installed/configured"
        ready=1
    fi
    if ((ready == 0)); then echo "cluster: ready"; else echo "cluster: NOT ready"; fi
    return "$ready"
}

cmd_logs() {
    local f
    for f in "$LOG_DIR"/*.log "$LOG_DIR"/*.out; do
        [[ -s "$f" ]] || continue
        echo "==== $f"
        tail -n 20 "$f"
    done
}

usage() {
    sed -n '2,/^# ----/p' "$0" | sed -e 's/^# \{0,1\}//' -e '/^----/d'
}

main() {
    case "${1:-}" in
        start) cmd_start ;;
        stop) cmd_stop ;;
        restart) cmd_restart ;;
        status) cmd_status ;;
        logs) cmd_logs ;;
        -h | --help | help) usage ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
