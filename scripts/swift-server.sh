#!/usr/bin/env bash
# Second local S3 server for tests: a throw-away single-node OpenStack Swift
# (proxy + account + container + object servers, object updater, memcached)
# speaking S3 through the s3api middleware, authenticated by tempauth.
#
#   bash scripts/swift-server.sh start    # start (idempotent), then print the env lines
#   bash scripts/swift-server.sh stop     # stop what this script started, remove the data
#   bash scripts/swift-server.sh status   # exit 0 if running and answering S3
#   bash scripts/swift-server.sh env      # eval "$(bash scripts/swift-server.sh env)"
#
# Needs the Debian packages swift-proxy, swift-object, swift-container,
# swift-account, python3-swift and memcached; `start` installs them with apt-get
# if missing (root). Swift always reads /etc/swift/swift.conf (hash path
# suffix, storage policies): the package's one is used as is, one is written
# only if it is missing or has no hash path suffix/prefix. Everything else
# (configs, rings, object data, pid files, logs) lives in SWIFT_SERVER_DIR;
# the Swift logs (proxy access log included) go to log/swift.log there, via a
# small syslog receiver on an ephemeral UDP port of 127.0.0.1.
# Nothing runs in a container; all daemons bind 127.0.0.1 only.
#
# Environment:
#   SWIFT_SERVER_DIR             base dir for config, rings, data, pid files, logs
#                                (default: <repo>/.swift-server)
#   SWIFT_SERVER_PORT            proxy (S3) port                     (default 7580)
#   SWIFT_SERVER_BACKEND_PORTS   object, container and account server ports,
#                                three consecutive ports "min-max"   (default 16200-16202)
#   SWIFT_SERVER_MEMCACHED_PORT  memcached port                      (default 16211)
#   SWIFT_SERVER_TIMEOUT         seconds `start` may take            (default 60)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${SWIFT_SERVER_DIR:-$REPO/.swift-server}"
# Absolute: the daemons chdir to / and the paths go into their configs.
DIR="$(realpath -m -- "$DIR")"
PORT="${SWIFT_SERVER_PORT:-7580}"
BACKEND_PORTS="${SWIFT_SERVER_BACKEND_PORTS:-16200-16202}"
MEMCACHED_PORT="${SWIFT_SERVER_MEMCACHED_PORT:-16211}"
START_TIMEOUT="${SWIFT_SERVER_TIMEOUT:-60}"

# tempauth user "tester" in account "doorito" (Swift account AUTH_doorito); the
# S3 access key is "<account>:<user>". Neither name may contain "_".
SWIFT_ACCOUNT="doorito"
SWIFT_USER="tester"
ACCESS_KEY="$SWIFT_ACCOUNT:$SWIFT_USER"
SECRET_KEY="doorito-swift-secret-0123456789abcdef"
REGION="us-east-1"

ETC="$DIR/etc"   # swift_dir: server configs and rings
SRV="$DIR/srv"   # "devices": one plain directory device, d0
RUN="$DIR/run"
LOG="$DIR/log"
LOG_PORT_FILE="$RUN/log.port" # UDP port of the syslog receiver
SWIFT_CONF=/etc/swift/swift.conf
# The python3 Swift runs with (not whatever python3 is first on PATH).
PY=/usr/bin/python3
SWIFT_PKG=/usr/lib/python3/dist-packages/swift
# shellcheck source=scripts/server-common.sh
source "$REPO/scripts/server-common.sh"

# Never let the caller's Python environment leak into Swift.
unset PYTHONPATH PYTHONHOME
# Skip eventlet's dnspython-based resolver: everything here is an IP literal,
# and not importing it makes each daemon start ~0.3 s faster.
export EVENTLET_NO_GREENDNS=yes
# Daemons in stop order.
DAEMONS=(proxy-server object-updater object-server container-server account-server memcached syslog)

log() { echo "swift-server: $*" >&2; }

die() {
  log "ERROR: $*"
  exit 1
}

print_env() {
  cat <<EOF
export SWIFT_S3_ENDPOINT=http://127.0.0.1:$PORT
export SWIFT_S3_ACCESS_KEY_ID=$ACCESS_KEY
export SWIFT_S3_SECRET_ACCESS_KEY=$SECRET_KEY
export SWIFT_S3_REGION=$REGION
EOF
}

if ! [[ "$BACKEND_PORTS" =~ ^([0-9]+)-([0-9]+)$ ]] || ((BASH_REMATCH[2] != BASH_REMATCH[1] + 2)); then
  die "SWIFT_SERVER_BACKEND_PORTS must be three consecutive ports 'min-max' (e.g. 16200-16202), got '$BACKEND_PORTS'"
fi
OBJECT_PORT="${BASH_REMATCH[1]}"
CONTAINER_PORT=$((OBJECT_PORT + 1))
ACCOUNT_PORT=$((OBJECT_PORT + 2))

port_of() {
  case "$1" in
    proxy-server) echo "$PORT" ;;
    object-server) echo "$OBJECT_PORT" ;;
    container-server) echo "$CONTAINER_PORT" ;;
    account-server) echo "$ACCOUNT_PORT" ;;
    memcached) echo "$MEMCACHED_PORT" ;;
  esac
}

# PID of a daemon if its pid file points at a live process running the right
# binary with our config (guards against recycled PIDs); empty otherwise.
# The Swift daemons and the syslog receiver all run /usr/bin/python3, so the
# command line tells them apart. Bash builtins only: this runs in wait loops.
live_pid() {
  local name="$1" pid="" exe want args
  [[ -r "$RUN/$name.pid" ]] || return 0
  read -r pid 2>/dev/null <"$RUN/$name.pid" || true
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  case "$name" in
    memcached) exe=/usr/bin/memcached want="memcached -l 127.0.0.1 -p $MEMCACHED_PORT " ;;
    syslog) exe="$PY" want=" $ETC/syslog.py $LOG_PORT_FILE " ;;
    object-updater) exe="$PY" want="/swift-object-updater $ETC/object-server.conf " ;;
    *) exe="$PY" want="/swift-$name $ETC/$name.conf " ;;
  esac
  if ! [[ "/proc/$pid/exe" -ef "$exe" ]]; then
    # Binary replaced by a package upgrade while running?
    [[ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" == "$(readlink -f "$exe") (deleted)" ]] ||
      return 0
  fi
  mapfile -d '' args 2>/dev/null <"/proc/$pid/cmdline" || return 0
  if [[ " ${args[*]} " == *"$want"* ]]; then echo "$pid"; fi
}

# Signed (SigV4) ListBuckets with the test user; succeeds only once the proxy,
# tempauth, memcached and the account server work. The access key contains a
# ":", which `curl --user` would split on, so the credentials go in a netrc.
s3_ready() {
  [[ -r "$RUN/netrc" ]] || return 1
  sigv4_list_buckets "$PORT" "$REGION" --netrc-file "$RUN/netrc"
}

healthy() {
  [[ "$(curl -s -m 2 --fail "http://127.0.0.1:$1/healthcheck" 2>/dev/null)" == OK ]]
}

is_running() {
  local d
  for d in "${DAEMONS[@]}"; do
    [[ -n "$(live_pid "$d")" ]] || return 1
  done
  s3_ready
}

show_logs() {
  local name="$1" f port pids
  # Swift retries binding a busy port for 30 s before giving up: say who has it.
  port="$(port_of "$name")"
  if [[ -n "$port" ]]; then
    pids="$(listeners "$port" | grep -vx "$(live_pid "$name")" | paste -sd, - || true)"
    if [[ -n "$pids" ]]; then
      log "port $port ($name) is held by another process:"
      ps -o pid=,args= -p "$pids" >&2 2>/dev/null || true
    fi
  fi
  f="$LOG/$name.out"
  if [[ -s "$f" ]]; then
    echo "----- tail of $f -----" >&2
    tail -n 40 "$f" >&2
  fi
  f="$LOG/swift.log"
  if [[ -s "$f" ]]; then
    local lines
    case "$name" in
      memcached | syslog | rings) lines="$(tail -n 20 "$f")" ;;
      *) lines="$(grep -F " $name: " "$f" | tail -n 40 || true)" ;;
    esac
    if [[ -n "$lines" ]]; then
      echo "----- tail of $f ($name) -----" >&2
      echo "$lines" >&2
    fi
  fi
}

# Stop all our daemons: SIGTERM (proxy first), then SIGKILL after $1 seconds.
stop_daemons() {
  local grace="$1" d pid i left
  local -A pids=()
  for d in "${DAEMONS[@]}"; do
    pid="$(live_pid "$d")"
    if [[ -n "$pid" ]]; then
      kill -TERM "$pid" 2>/dev/null || true
      pids[$d]="$pid"
    fi
  done
  for ((i = 0; i < grace * 10; i++)); do
    left=0
    for pid in "${pids[@]}"; do
      if alive "$pid"; then left=1; fi
    done
    ((left)) || break
    sleep 0.1
  done
  for d in "${!pids[@]}"; do
    pid="${pids[$d]}"
    if alive "$pid"; then
      log "$d (pid $pid) ignored SIGTERM, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        alive "$pid" || break
        sleep 0.1
      done
    fi
  done
  for d in "${DAEMONS[@]}"; do
    rm -f "$RUN/$d.pid"
  done
}

# Remove everything but the logs (kept for post-mortems until the next start).
wipe_data() {
  [[ -n "$DIR" && "$DIR" != "/" ]] || die "refusing to wipe SWIFT_SERVER_DIR='$DIR'"
  rm -rf "$ETC" "$SRV" "$RUN"
}

cmd_stop() {
  stop_daemons 5
  wipe_data
}

ensure_packages() {
  local bin missing=0
  for bin in swift-proxy-server swift-object-server swift-object-updater \
    swift-container-server swift-account-server memcached; do
    command -v "$bin" >/dev/null 2>&1 || missing=1
  done
  # (Importing swift to check takes 0.5 s; look for the file instead.)
  if ((!missing)) && [[ -x "$PY" && -f "$SWIFT_PKG/common/middleware/s3api/s3api.py" ]]; then
    return 0
  fi
  log "installing Swift packages (swift-proxy swift-object swift-container swift-account python3-swift memcached) ..."
  apt_install swift-proxy swift-object swift-container swift-account python3-swift memcached
  command -v swift-proxy-server >/dev/null 2>&1 || die "swift-proxy-server still missing after install"
}

# Swift reads the hash path suffix/prefix from /etc/swift/swift.conf, always.
# Keep the package's file if it has one; otherwise add one (backup kept).
ensure_swift_conf() {
  if "$PY" - "$SWIFT_CONF" <<'EOF'; then return 0; fi
import configparser, sys
c = configparser.ConfigParser()
try:
    if not c.read(sys.argv[1]):
        sys.exit(1)
except configparser.Error:
    sys.exit(1)
ok = c.get("swift-hash", "swift_hash_path_suffix", fallback="") or \
    c.get("swift-hash", "swift_hash_path_prefix", fallback="")
sys.exit(0 if ok.strip() else 1)
EOF
  log "$SWIFT_CONF is missing or has no swift_hash_path_suffix/prefix, writing one"
  mkdir -p "${SWIFT_CONF%/*}" 2>/dev/null || die "cannot create ${SWIFT_CONF%/*} (need root)"
  if [[ -e "$SWIFT_CONF" ]]; then
    cp -p "$SWIFT_CONF" "$SWIFT_CONF.bak-swift-server" || die "cannot back up $SWIFT_CONF (need root)"
  fi
  "$PY" - "$SWIFT_CONF" <<'EOF' || die "could not write $SWIFT_CONF (need root)"
import configparser, secrets, sys
c = configparser.ConfigParser()
try:
    c.read(sys.argv[1])
except configparser.Error:
    c = configparser.ConfigParser()
if not c.has_section("swift-hash"):
    c.add_section("swift-hash")
c.set("swift-hash", "swift_hash_path_suffix", secrets.token_hex(16))
if not any(s.startswith("storage-policy:") for s in c.sections()):
    c.add_section("storage-policy:0")
    c.set("storage-policy:0", "name", "Policy-0")
    c.set("storage-policy:0", "default", "yes")
with open(sys.argv[1], "w") as f:
    c.write(f)
EOF
}

# [DEFAULT] lines shared by all server configs.
common_conf() {
  cat <<EOF
bind_ip = 127.0.0.1
bind_port = $1
# 0: serve from the main process, no forked workers (less RAM, simpler pids).
workers = 0
user = $(id -un)
swift_dir = $ETC
devices = $SRV
mount_check = false
disable_fallocate = true
recon_cache_path = $RUN/recon
# Syslog over UDP to our receiver (there is no /dev/log, and proxy-logging's
# access log cannot use a log_address of its own, only log_udp_*).
log_udp_host = 127.0.0.1
log_udp_port = $(<"$LOG_PORT_FILE")
log_facility = LOG_LOCAL0
log_level = INFO
EOF
}

write_confs() {
  cat >"$ETC/proxy-server.conf" <<EOF
# Generated by scripts/swift-server.sh -- throw-away test server, do not edit.
[DEFAULT]
$(common_conf "$PORT")
log_name = proxy-server

[pipeline:main]
# s3api needs slo (multipart uploads) and must come before the auth middleware.
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo versioned_writes proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$MEMCACHED_PORT

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:bulk]
use = egg:swift#bulk

[filter:s3api]
use = egg:swift#s3api
location = $REGION
# Smallest non-last part CompleteMultipartUpload accepts (S3: 5 MiB).
min_segment_size = 5242880

[filter:tempauth]
use = egg:swift#tempauth
user_${SWIFT_ACCOUNT}_${SWIFT_USER} = $SECRET_KEY .admin

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo

[filter:versioned_writes]
use = egg:swift#versioned_writes
EOF

  local kind port app
  for kind in account container object; do
    # The proxy logs every request already; the back ends log only problems.
    app="log_requests = false"
    case "$kind" in
      account) port="$ACCOUNT_PORT" ;;
      container)
        port="$CONTAINER_PORT"
        # Timeout of the account update a container PUT/DELETE makes (default 3 s).
        app+=$'\nnode_timeout = 10'
        ;;
      object)
        port="$OBJECT_PORT"
        # The object server sends the container update (what makes an object
        # show up in, or vanish from, listings) before answering, but stops
        # waiting after container_update_timeout (default 1 s; the update then
        # lands later) -- too short on a loaded test machine: listings right
        # after a PUT/DELETE must be exact. Updates that fail (node_timeout,
        # default 3 s) are queued as async pendings and replayed by the object
        # updater, i.e. seconds later.
        app+=$'\ncontainer_update_timeout = 20\nnode_timeout = 10'
        ;;
    esac
    cat >"$ETC/$kind-server.conf" <<EOF
# Generated by scripts/swift-server.sh -- throw-away test server, do not edit.
[DEFAULT]
$(common_conf "$port")
log_name = $kind-server

[pipeline:main]
pipeline = healthcheck $kind-server

[app:$kind-server]
use = egg:swift#$kind
$app

[filter:healthcheck]
use = egg:swift#healthcheck
EOF
  done
  cat >>"$ETC/object-server.conf" <<EOF

[object-updater]
log_name = object-updater
# Replays failed container updates (async pendings). Each sweep forks a child
# that costs ~0.7 s of CPU (eventlet monkey-patching), hence not more often.
interval = 30
concurrency = 1
updater_workers = 1
# Failures are logged as errors; no "sweep completed" lines every 30 s.
log_level = WARNING
EOF

  # SigV4 credentials for s3_ready (see there).
  (
    umask 077
    printf 'machine 127.0.0.1 login %s password %s\n' "$ACCESS_KEY" "$SECRET_KEY" >"$RUN/netrc"
  )
}

# One-device, one-replica rings, part power 8 (RingBuilder in-process: faster
# than nine swift-ring-builder runs).
build_rings() {
  "$PY" - "$ETC" "$ACCOUNT_PORT" "$CONTAINER_PORT" "$OBJECT_PORT" <<'EOF'
import sys
from swift.common.ring import RingBuilder
etc = sys.argv[1]
ports = dict(zip(("account", "container", "object"), map(int, sys.argv[2:5])))
for kind, port in ports.items():
    b = RingBuilder(8, 1, 1)
    b.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": port,
               "device": "d0", "weight": 100.0, "meta": ""})
    b.rebalance()
    b.save("%s/%s.builder" % (etc, kind))
    b.get_ring().save("%s/%s.ring.gz" % (etc, kind))
EOF
}

# Swift logs only to syslog, and there is no syslog daemon here: a tiny
# receiver on 127.0.0.1:<ephemeral UDP port> (written to argv[1] once bound)
# appends what arrives to argv[2], one line per message.
SYSLOG_PY='
import os, signal, socket, sys, time
port_file, out_path = sys.argv[1], sys.argv[2]
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("127.0.0.1", 0))
with open(out_path, "ab", buffering=0) as f:
    with open(port_file + ".tmp", "w") as p:
        p.write("%d\n" % s.getsockname()[1])
    os.rename(port_file + ".tmp", port_file)
    while True:
        msg = s.recv(1 << 16).rstrip(b"\0\r\n")
        if msg.startswith(b"<"):
            end = msg.find(b">", 0, 6)
            if end > 0:
                msg = msg[end + 1:]
        f.write(time.strftime("%Y-%m-%d %H:%M:%S ").encode() + msg + b"\n")
'

DEADLINE=0
time_left() { ((EPOCHSECONDS < DEADLINE)); }

# fail_start "NAME..." MESSAGE: show the daemons' logs, clean up, exit 1.
fail_start() {
  local names="$1" name
  shift
  log "ERROR: $*"
  for name in $names; do
    show_logs "$name"
  done
  log "stopping the partially started server (logs kept in $LOG)"
  cmd_stop >/dev/null 2>&1 || true
  exit 1
}

# spawn NAME CMD...: run a foreground daemon in the background, in a session
# of its own (Swift daemons kill their process group on SIGTERM), pid file.
spawn() {
  local name="$1"
  shift
  setsid "$@" </dev/null >>"$LOG/$name.out" 2>&1 &
  local pid="$!" i
  echo "$pid" >"$RUN/$name.pid"
  # Until the forked shell has exec'ed setsid and setsid the daemon,
  # live_pid does not recognise it yet.
  for ((i = 0; i < 500; i++)); do
    [[ -n "$(live_pid "$name")" ]] && return 0
    alive "$pid" || break
    sleep 0.01
  done
  fail_start "$name" "$name did not start: $*"
}

# ready NAME: true once the daemon answers.
# ready NAME LISTENING: true once the daemon answers (LISTENING: `ss -Hltn`).
ready() {
  local port
  case "$1" in
    syslog)
      [[ -s "$LOG_PORT_FILE" ]]
      return
      ;;
    object-updater) return 0 ;;
  esac
  port="$(port_of "$1")"
  # Swift listens only once its app is loaded. Cheap check first: polling
  # with curl takes CPU from the daemons that are booting.
  [[ "$2" == *" 127.0.0.1:$port "* ]] || return 1
  case "$1" in
    memcached) return 0 ;;
    proxy-server) s3_ready ;;
    *) healthy "$port" ;;
  esac
}

# wait_ready NAME...: wait until all answer; fail if one exits or on timeout.
wait_ready() {
  local pending=("$@") left d listening
  while ((${#pending[@]})); do
    left=()
    listening="$(ss -Hltn 2>/dev/null || true)"
    for d in "${pending[@]}"; do
      [[ -n "$(live_pid "$d")" ]] || fail_start "$d" "$d exited during start (see $LOG)"
      ready "$d" "$listening" || left+=("$d")
    done
    pending=(${left[@]+"${left[@]}"})
    ((${#pending[@]})) || break
    time_left || fail_start "${pending[*]}" "${pending[*]} not ready within ${START_TIMEOUT}s"
    sleep 0.1
  done
}

cmd_start() {
  command -v ss >/dev/null 2>&1 || die "ss (iproute2) is required"
  command -v curl >/dev/null 2>&1 || die "curl is required"
  command -v setsid >/dev/null 2>&1 || die "setsid (util-linux) is required"

  if is_running; then
    log "already running (pids in $RUN)"
    print_env
    return 0
  fi

  stop_partial
  refuse_busy_ports "SWIFT_SERVER_PORT / SWIFT_SERVER_BACKEND_PORTS / SWIFT_SERVER_MEMCACHED_PORT" \
    "$PORT" "$OBJECT_PORT" "$CONTAINER_PORT" "$ACCOUNT_PORT" "$MEMCACHED_PORT"

  ensure_packages
  ensure_swift_conf

  local t0="$EPOCHREALTIME"
  DEADLINE=$((EPOCHSECONDS + START_TIMEOUT))

  wipe_data
  rm -rf "$LOG"
  mkdir -p "$DIR" "$ETC" "$SRV/d0" "$RUN/recon" "$LOG"

  # Log sink first: its port goes into the configs.
  printf '%s' "$SYSLOG_PY" >"$ETC/syslog.py"
  spawn syslog "$PY" "$ETC/syslog.py" "$LOG_PORT_FILE" "$LOG/swift.log"
  wait_ready syslog
  write_confs

  spawn memcached memcached -l 127.0.0.1 -p "$MEMCACHED_PORT" -U 0 -m 64 -c 1024 -t 2 -u "$(id -un)"
  local kind
  for kind in account container object; do
    spawn "$kind-server" "/usr/bin/swift-$kind-server" "$ETC/$kind-server.conf"
  done
  # The back ends do not need the rings (the proxy does): build them meanwhile.
  build_rings >>"$LOG/rings.out" 2>&1 || fail_start rings "building the rings failed"
  spawn proxy-server /usr/bin/swift-proxy-server "$ETC/proxy-server.conf"
  wait_ready memcached account-server container-server object-server proxy-server
  # Not needed to answer requests: start it last so it does not slow the others.
  spawn object-updater /usr/bin/swift-object-updater "$ETC/object-server.conf"
  wait_ready object-updater

  log "up in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')s: S3 at http://127.0.0.1:$PORT (files in $DIR, logs in $LOG/swift.log)"
  print_env
}

dispatch "${1:-}"
