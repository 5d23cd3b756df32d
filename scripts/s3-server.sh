#!/usr/bin/env bash
# Local S3 server for tests: a throw-away single-node Ceph 16 "pacific" cluster
# (one ceph-mon, one ceph-osd on memstore, i.e. RAM only) plus the RADOS Gateway.
#
#   bash scripts/s3-server.sh start    # start (idempotent), then print the env lines
#   bash scripts/s3-server.sh stop     # stop what this script started, remove the data
#   bash scripts/s3-server.sh status   # exit 0 if running
#   bash scripts/s3-server.sh env      # eval "$(bash scripts/s3-server.sh env)"
#
# Needs root (or a user allowed to run the Ceph daemons) and the Debian packages
# ceph-mon, ceph-osd and radosgw; `start` installs them with apt-get if missing.
# Nothing runs in a container; all daemons bind 127.0.0.1 only.
#
# Environment:
#   S3_SERVER_DIR         base dir for config, data, pid files, sockets, logs
#                         (default: <repo>/.s3-server)
#   S3_SERVER_PORT        RGW (S3) port                         (default 7480)
#   S3_SERVER_MON_PORT    ceph-mon port (msgr v2 only)          (default 16789)
#   S3_SERVER_OSD_PORTS   ceph-osd port range, "min-max"        (default 16800-16830)
#   S3_SERVER_MEM_BYTES   memstore capacity in bytes            (default 10 GiB)
#   S3_SERVER_TIMEOUT     seconds `start` may take              (default 90)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${S3_SERVER_DIR:-$REPO/.s3-server}"
PORT="${S3_SERVER_PORT:-7480}"
MON_PORT="${S3_SERVER_MON_PORT:-16789}"
OSD_PORTS="${S3_SERVER_OSD_PORTS:-16800-16830}"
MEM_BYTES="${S3_SERVER_MEM_BYTES:-10737418240}"
START_TIMEOUT="${S3_SERVER_TIMEOUT:-90}"

ACCESS_KEY="DOORITOTESTACCESSKEY"
SECRET_KEY="doorito-test-secret-key-0123456789abcdef"
REGION="us-east-1"
S3_UID="doorito-test"

CONF="$DIR/ceph.conf"
RUN="$DIR/run"
LOG="$DIR/log"
# Daemons in stop order.
DAEMONS=(client.rgw.a osd.0 mon.a)

# shellcheck source=scripts/server-common.sh
source "$REPO/scripts/server-common.sh"

# Never let the caller's Ceph environment leak into our CLI calls.
unset CEPH_ARGS CEPH_CONF

log() { echo "s3-server: $*" >&2; }

die() {
  log "ERROR: $*"
  exit 1
}

print_env() {
  cat <<EOF
export S3_TEST_ENDPOINT=http://127.0.0.1:$PORT
export S3_TEST_ACCESS_KEY_ID=$ACCESS_KEY
export S3_TEST_SECRET_ACCESS_KEY=$SECRET_KEY
export S3_TEST_REGION=$REGION
EOF
}

# Every Ceph CLI call goes through these: some commands (those needing a
# ceph-mgr, which we do not run) hang forever otherwise.
ceph_cli() { timeout 20 ceph -c "$CONF" --connect-timeout 15 "$@"; }
rgw_admin() { timeout 30 radosgw-admin -c "$CONF" "$@"; }

exe_of() {
  case "$1" in
    mon.*) echo ceph-mon ;;
    osd.*) echo ceph-osd ;;
    client.rgw.*) echo radosgw ;;
  esac
}

# PID of a daemon if its pid file points at a live process running the right
# binary (guards against recycled PIDs); empty otherwise.
live_pid() {
  local name="$1" pid exe
  [[ -r "$RUN/$name.pid" ]] || return 0
  pid="$(tr -dc 0-9 <"$RUN/$name.pid" 2>/dev/null || true)"
  [[ -n "$pid" ]] || return 0
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  exe="${exe% (deleted)}"
  if [[ "${exe##*/}" == "$(exe_of "$name")" ]]; then echo "$pid"; fi
}

# Signed ListBuckets with the test user; succeeds only once RGW and the user work.
s3_ready() { sigv4_list_buckets "$PORT" "$REGION" --user "$ACCESS_KEY:$SECRET_KEY"; }

is_running() {
  local d
  for d in "${DAEMONS[@]}"; do
    [[ -n "$(live_pid "$d")" ]] || return 1
  done
  s3_ready
}

show_logs() {
  local f
  for f in "$@"; do
    [[ -s "$f" ]] || continue
    echo "----- tail of $f -----" >&2
    tail -n 40 "$f" >&2
  done
}

logs_of() {
  echo "$LOG/$1.log" "$LOG/$1.out"
  if [[ "$1" == mon.* ]]; then echo "$LOG/cluster.log"; fi
}

# Kill one daemon by pid file: SIGTERM, then SIGKILL after $2 seconds.
stop_daemon() {
  local name="$1" grace="$2" pid i
  pid="$(live_pid "$name")"
  if [[ -n "$pid" ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      log "$name (pid $pid) ignored SIGTERM, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        alive "$pid" || break
        sleep 0.1
      done
    fi
  fi
  rm -f "$RUN/$name.pid"
}

# Remove everything but the logs (kept for post-mortems until the next start).
wipe_data() {
  [[ -n "$DIR" && "$DIR" != "/" ]] || die "refusing to wipe S3_SERVER_DIR='$DIR'"
  rm -rf "$DIR/mon.a" "$DIR/osd.0" "$DIR/rgw" "$DIR/crash" "$RUN" \
    "$DIR/monmap" "$DIR/keyring" "$CONF"
}

cmd_stop() {
  # RGW first (stops client I/O), then OSD, then the mon.
  stop_daemon client.rgw.a 5
  stop_daemon osd.0 5
  stop_daemon mon.a 5
  wipe_data
}

ensure_packages() {
  local bin missing=0
  for bin in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool ceph-authtool; do
    command -v "$bin" >/dev/null 2>&1 || missing=1
  done
  ((missing)) || return 0
  log "installing Ceph packages (ceph-mon ceph-osd radosgw) ..."
  apt_install ceph-mon ceph-osd radosgw
  command -v radosgw >/dev/null 2>&1 || die "radosgw still missing after install"
}

write_conf() {
  local fsid="$1"
  cat >"$CONF" <<EOF
# Generated by scripts/s3-server.sh -- throw-away test cluster, do not edit.
[global]
fsid = $fsid
mon initial members = a
mon host = [v2:127.0.0.1:$MON_PORT]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind msgr2 = true
ms bind ipv6 = false
ms bind port min = ${OSD_PORTS%-*}
ms bind port max = ${OSD_PORTS#*-}
auth cluster required = none
auth service required = none
auth client required = none
# With auth "none" the mon client must accept crc mode, or RGW fails with -13.
ms mon client mode = crc secure
ms mon service mode = crc secure
ms mon cluster mode = crc secure
ms client mode = crc secure
ms service mode = crc secure
ms cluster mode = crc secure
run dir = $RUN
crash dir = $DIR/crash
log file = $LOG/\$name.log
admin socket = \$run_dir/\$name.\$pid.asok
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 1
# Fast paxos: ~3 s boot instead of ~18 s.
paxos propose interval = 0.05
paxos min wait = 0.01
debug ms = 0
debug mon = 1
debug paxos = 0
debug osd = 1
debug rgw = 1
debug monc = 0
debug auth = 0

[mon]
mon data = $DIR/mon.\$id
mon cluster log file = $LOG/cluster.log
pid file = $RUN/\$name.pid
admin socket = \$run_dir/\$name.asok

[osd]
osd data = $DIR/osd.\$id
osd objectstore = memstore
memstore device bytes = $MEM_BYTES
pid file = $RUN/\$name.pid
admin socket = \$run_dir/\$name.asok

[client]
rgw data = $DIR/rgw
rgw enable usage log = false
rgw enable ops log = false
# memstore keeps deleted data in RAM until GC runs (default: after 2 h).
rgw gc obj min wait = 10
rgw gc processor period = 10

[client.rgw.a]
# tcp_nodelay: without it every small GET stalls ~40 ms (Nagle + delayed ACK).
rgw frontends = beast endpoint=127.0.0.1:$PORT tcp_nodelay=1
pid file = $RUN/\$name.pid
admin socket = \$run_dir/\$name.asok
EOF
}

DEADLINE=0
time_left() { (($(date +%s) < DEADLINE)); }

# fail NAME MESSAGE: show the daemon's logs, clean up, exit 1.
fail_start() {
  local name="$1"
  shift
  log "ERROR: $*"
  # shellcheck disable=SC2046
  show_logs $(logs_of "$name")
  log "stopping the partially started cluster (logs kept in $LOG)"
  cmd_stop >/dev/null 2>&1 || true
  exit 1
}

# run_daemon NAME CMD...: start a self-daemonizing Ceph daemon, check its pid file.
run_daemon() {
  local name="$1"
  shift
  if ! timeout 30 "$@" </dev/null >>"$LOG/$name.out" 2>&1; then
    fail_start "$name" "$name failed to start: $*"
  fi
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -n "$(live_pid "$name")" ]] && return 0
    sleep 0.1
  done
  fail_start "$name" "$name is not running after start"
}

cmd_start() {
  command -v ss >/dev/null 2>&1 || die "ss (iproute2) is required"
  command -v curl >/dev/null 2>&1 || die "curl is required"

  if is_running; then
    log "already running (pids in $RUN)"
    print_env
    return 0
  fi

  stop_partial
  refuse_busy_ports "S3_SERVER_PORT / S3_SERVER_MON_PORT / S3_SERVER_OSD_PORTS" "$PORT" "$MON_PORT"

  ensure_packages

  local t0="$EPOCHREALTIME"
  DEADLINE=$(($(date +%s) + START_TIMEOUT))

  wipe_data
  rm -rf "$LOG"
  mkdir -p "$DIR" "$RUN" "$LOG" "$DIR/mon.a" "$DIR/osd.0" "$DIR/rgw" "$DIR/crash"

  local fsid osd_uuid
  fsid="$(cat /proc/sys/kernel/random/uuid)"
  osd_uuid="$(cat /proc/sys/kernel/random/uuid)"
  write_conf "$fsid"

  # --- mon ---------------------------------------------------------------
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT]" "$DIR/monmap" \
    >>"$LOG/mon.a.out" 2>&1 || fail_start mon.a "monmaptool failed"
  # mkfs wants a mon keyring even with auth "none".
  ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' \
    >>"$LOG/mon.a.out" 2>&1 || fail_start mon.a "ceph-authtool failed"
  timeout 30 ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring" \
    >>"$LOG/mon.a.out" 2>&1 || fail_start mon.a "ceph-mon --mkfs failed"
  run_daemon mon.a ceph-mon -c "$CONF" -i a

  # --- osd ---------------------------------------------------------------
  local osd_id=""
  while time_left; do
    osd_id="$(ceph_cli osd new "$osd_uuid" 2>>"$LOG/osd.0.out")" && break
    sleep 0.2
  done
  [[ "$osd_id" == 0 ]] || fail_start mon.a "'ceph osd new' failed (got '$osd_id')"
  timeout 30 ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" \
    >>"$LOG/osd.0.out" 2>&1 || fail_start osd.0 "ceph-osd --mkfs failed"
  run_daemon osd.0 ceph-osd -c "$CONF" -i 0

  # --- S3 user (creates the RGW pools/zone; runs while the OSD boots) --------
  local ok=0
  while time_left; do
    if rgw_admin user create --uid="$S3_UID" --display-name="Doorito tests" \
      --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" \
      >>"$LOG/radosgw-admin.out" 2>&1; then
      ok=1
      break
    fi
    sleep 0.5
  done
  ((ok)) || fail_start osd.0 "radosgw-admin user create did not succeed within ${START_TIMEOUT}s
$(tail -n 20 "$LOG/radosgw-admin.out" 2>/dev/null)"

  # --- rgw ---------------------------------------------------------------
  run_daemon client.rgw.a radosgw -c "$CONF" -n client.rgw.a
  ok=0
  while time_left; do
    if s3_ready; then
      ok=1
      break
    fi
    [[ -n "$(live_pid client.rgw.a)" ]] || fail_start client.rgw.a "radosgw exited"
    sleep 0.1
  done
  ((ok)) || fail_start client.rgw.a "RGW did not answer S3 requests on port $PORT within ${START_TIMEOUT}s"

  log "up in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')s: S3 at http://127.0.0.1:$PORT (data in RAM, files in $DIR)"
  print_env
}

dispatch "${1:-}"
