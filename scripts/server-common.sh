# shellcheck shell=bash
# Shared by scripts/s3-server.sh and scripts/swift-server.sh (sourced, not run). Expects PORT,
# log, die, live_pid, cmd_stop, DAEMONS and DIR from the script that sources it.

# PIDs listening on 127.0.0.1:PORT (or any address), one per line.
listeners() {
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true
}

port_busy() { [[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]]; }

# True while a process exists and is not a zombie (in case nobody reaps it).
alive() {
  local stat=""
  read -r stat 2>/dev/null <"/proc/$1/stat" || true
  [[ -n "$stat" && "${stat##*) }" != Z* ]]
}

# Signed (SigV4) ListBuckets at 127.0.0.1:PORT; succeeds only once the server and its user
# work. Arguments: port, region, then curl's credential options (--user … or --netrc-file …).
sigv4_list_buckets() {
  local port="$1" region="$2" out
  shift 2
  # curl's sigv4 does not send x-amz-content-sha256 by itself; RGW requires it.
  out="$(curl -s -m 5 --fail --aws-sigv4 "aws:amz:$region:s3" "$@" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "http://127.0.0.1:$port/" 2>/dev/null)" || return 1
  [[ "$out" == *ListAllMyBucketsResult* ]]
}

# Some of our daemons run but not all (e.g. one crashed): stop them all, to start over.
stop_partial() {
  local d any=0
  for d in "${DAEMONS[@]}"; do
    [[ -n "$(live_pid "$d")" ]] && any=1
  done
  if ((any)); then
    log "found a partially running server of ours in $DIR, restarting it"
    cmd_stop
  fi
}

# refuse_busy_ports HINT PORT...: die when something else (another checkout's server?) holds
# one of our ports. HINT names the variables that choose other ports.
refuse_busy_ports() {
  local hint="$1" p pids who
  shift
  for p in "$@"; do
    port_busy "$p" || continue
    pids="$(listeners "$p" | paste -sd, -)"
    who=""
    if [[ -n "$pids" ]]; then who="$(ps -o pid=,args= -p "$pids" 2>/dev/null | head -5 || true)"; fi
    die "port $p is already in use by a process this checkout ($DIR) did not start:
${who:-  (unknown process)}
Stop it (e.g. 'bash scripts/$(basename "$0") stop' in the checkout that started it, or
the script with its *_SERVER_DIR=<its dir>), or choose other ports with $hint."
  done
}

# apt_install PACKAGE...: install without recommends, refreshing the index once if needed.
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends "$@" >&2; then
    apt-get update -q >&2 || true
    apt-get install -y -q --no-install-recommends "$@" >&2 || die "could not install $*"
  fi
}

# dispatch COMMAND: the scripts' start|stop|status|env.
dispatch() {
  case "$1" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status)
      # shellcheck disable=SC2153 # PORT comes from the sourcing script
      if is_running; then
        echo "running: S3 at http://127.0.0.1:$PORT ($DIR)"
      else
        echo "not running"
        exit 1
      fi
      ;;
    env) print_env ;;
    *)
      echo "usage: $0 {start|stop|status|env}" >&2
      exit 2
      ;;
  esac
}
