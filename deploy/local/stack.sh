#!/usr/bin/env bash
# The servers pamong needs (RabbitMQ with the management API, a MongoDB-protocol database),
# chosen as DESIGN §8 says, in this order, per server:
#   1. the server named by AMQP_URI (+ RABBIT_MANAGEMENT_URL) / MONGO_URI, when it answers;
#   2. Docker Compose (deploy/compose.yaml), when a Docker engine answers and compose exists;
#   3. a native, project-private process: a RabbitMQ node (rabbitmq-server installed from the
#      OS packages when missing and we are root) and FerretDB (SQLite backend, built with Go
#      into .cache/bin/ferretdb when missing); data, logs and pid files under .run/.
#
# Usage: deploy/local/stack.sh up|down [rabbitmq] [db]|status|env|clean|is-running rabbitmq|db
#        deploy/local/stack.sh ferretdb-without PATCH...
#   up          start (or reuse) both servers; safe to re-run; never leaves half a stack.
#               AMQP_URI / MONGO_URI naming a server this script runs (as `env` exports
#               them) keep it managed here: it is reused, or restarted when it stopped
#   down        stop what this script started (pid files / compose state); nothing else;
#               only the named server(s) when given (`up` starts them again)
#   status      what runs, and whether it answers (exit 0 all answer, 1 some do not, 3 not up
#               or only half up)
#   env         `export AMQP_URI=... MONGO_URI=... RABBIT_MANAGEMENT_URL=...` for eval
#               (fails while a server is down)
#   clean       down, then remove .run/ and the tmpfs data directory
#   is-running  exit 0 when our own (native or compose) instance of that server runs
#   ferretdb-without PATCH...  build (once, into .cache/bin/) FerretDB with every patch but
#               the named ones and print the binary's path (`make bench` compares builds)
#
# Settings (environment):
#   AMQP_URI, RABBIT_MANAGEMENT_URL, MONGO_URI   use these servers when they answer
#   PAMONG_AMQP_PORT (5672)  PAMONG_RABBIT_MGMT_PORT (15672)  PAMONG_MONGO_PORT (27017)
#   PAMONG_RABBIT_DIST_PORT (AMQP port + 20010)  Erlang distribution port of the private node
#   PAMONG_RABBIT_NODENAME (pamong-<hash of repo path>@localhost)
#   PAMONG_DB_TMPFS (0)      0: FerretDB data in .run/ferretdb/ (kept); 1: under
#                            /dev/shm/pamong-<hash>/ (throw-away, fast). Our running FerretDB
#                            is restarted when it keeps its data in the other place
#   PAMONG_FERRETDB_VERSION (v1.24.2)  PAMONG_START_TIMEOUT (60 seconds per server)
#   PAMONG_FERRETDB_GOGC (1000)  Go's GC target for FerretDB: its live heap is small (tens of
#                            MB), so Go's default (100) collects hundreds of times a second
#                            under load; 1000 halves FerretDB's CPU per write for ~100 MB RSS.
#                            A soft memory limit (GOMEMLIMIT, PAMONG_FERRETDB_MEMLIMIT, 2GiB)
#                            makes it collect sooner when a big query holds much data
#   PAMONG_NO_DOCKER (0)     1: skip the Docker step
#   PAMONG_NO_INSTALL (0)    1: never apt-get install rabbitmq-server
# FerretDB patches: deploy/local/ferretdb-patches/*.patch (patch -p1) are applied at build time;
# changing them rebuilds the binary on the next `up`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/deploy/local"
RUN="$ROOT/.run"
CACHE="$ROOT/.cache"
STATE="$RUN/stack.state"
COMPOSE_FILE="$ROOT/deploy/compose.yaml"
REPO_HASH=$(printf '%s' "$ROOT" | sha1sum | cut -c1-10)

AMQP_PORT=${PAMONG_AMQP_PORT:-5672}
MGMT_PORT=${PAMONG_RABBIT_MGMT_PORT:-15672}
DIST_PORT=${PAMONG_RABBIT_DIST_PORT:-$((AMQP_PORT + 20010))}
NODENAME=${PAMONG_RABBIT_NODENAME:-pamong-${REPO_HASH}@localhost}
MONGO_PORT=${PAMONG_MONGO_PORT:-27017}
DB_TMPFS=${PAMONG_DB_TMPFS:-0}
FERRETDB_VERSION=${PAMONG_FERRETDB_VERSION:-v1.24.2}
FERRETDB_GOGC=${PAMONG_FERRETDB_GOGC:-1000}
FERRETDB_MEMLIMIT=${PAMONG_FERRETDB_MEMLIMIT:-2GiB}
START_TIMEOUT=${PAMONG_START_TIMEOUT:-60}

RABBIT_DIR="$RUN/rabbitmq"
RABBIT_PID="$RABBIT_DIR/rabbit.pid"          # written by the node itself (RABBITMQ_PID_FILE)
RABBIT_LAUNCHER_PID="$RABBIT_DIR/launcher.pid" # the rabbitmq-server script we started
RABBIT_SETTINGS="$RABBIT_DIR/settings"
FDB_BIN="$CACHE/bin/ferretdb"
FDB_STAMP="$CACHE/bin/ferretdb.stamp"
FDB_PID="$RUN/ferretdb.pid"
FDB_LOG="$RUN/ferretdb.log"
FDB_SETTINGS="$RUN/ferretdb.settings"
FDB_PATCHES="$HERE/ferretdb-patches"
TMPFS_DIR="/dev/shm/pamong-$REPO_HASH"

log() { printf 'stack: %s\n' "$*" >&2; }
die() {
    printf 'stack: ERROR: %s\n' "$1" >&2
    shift
    local line
    for line in "$@"; do printf '       %s\n' "$line" >&2; done
    exit 1
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# python for probes: the project's venv (has pymongo) when it exists, else the system python3
if [[ -x "$ROOT/.venv/bin/python" ]]; then
    PY="$ROOT/.venv/bin/python"
elif command -v python3 >/dev/null 2>&1; then
    PY=python3
else
    die "python3 is missing (needed for the server probes)" "Debian/Ubuntu: apt-get install python3"
fi
probe() { "$PY" "$HERE/probe.py" "$@"; }

tcp_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

session_alive() { # some non-zombie process of session $1 (our setsid launchers lead one) runs
    # shellcheck disable=SC2009 # pgrep cannot leave zombies out
    [[ -n "${1:-}" ]] && ps -o stat= --sid "$1" 2>/dev/null | grep -qv '^Z'
}
pid_alive() { # running, and not a zombie
    [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null || return 1
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}
read_pid() { if [[ -s "$1" ]]; then tr -dc '0-9' <"$1"; fi; }
# the process is alive and its command line or environment contains $2 (guards against a
# recycled pid: we only ever signal processes that carry our own marker)
pid_matches() {
    local pid=$1 marker=$2
    pid_alive "$pid" || return 1
    cat "/proc/$pid/cmdline" "/proc/$pid/environ" 2>/dev/null | tr '\0' '\n' | grep -qF -- "$marker"
}

write_kv() { # file key=value... (values shell-quoted, so the file can be sourced)
    local file=$1 kv
    shift
    : >"$file.tmp"
    for kv in "$@"; do printf '%s=%q\n' "${kv%%=*}" "${kv#*=}" >>"$file.tmp"; done
    mv "$file.tmp" "$file"
}

load_state() {
    R_MODE="" R_AMQP_URI="" R_MGMT_URL="" D_MODE="" D_MONGO_URI="" D_DATA=""
    # shellcheck disable=SC1090
    [[ -f "$STATE" ]] && source "$STATE"
    return 0
}
save_state() {
    mkdir -p "$RUN"
    write_kv "$STATE" "R_MODE=$R_MODE" "R_AMQP_URI=$R_AMQP_URI" "R_MGMT_URL=$R_MGMT_URL" \
        "D_MODE=$D_MODE" "D_MONGO_URI=$D_MONGO_URI" "D_DATA=$D_DATA"
}

port_taken_msg() { # what port env var, port, what to do instead
    die "127.0.0.1:$2 is already taken by a process this script did not start" \
        "to use that server instead: export $3" \
        "to start a private one on another port: export $1=<free port>"
}

# --------------------------------------------------------------------------------- Docker ---
COMPOSE=()
DOCKER_CHECKED=""
docker_usable() { # cached: `docker info` can be slow
    [[ -z "$DOCKER_CHECKED" ]] && { docker_check && DOCKER_CHECKED=yes || DOCKER_CHECKED=no; }
    [[ $DOCKER_CHECKED == yes ]]
}
docker_check() {
    [[ "${PAMONG_NO_DOCKER:-0}" == 1 ]] && return 1
    command -v docker >/dev/null 2>&1 || return 1
    timeout 20 docker info >/dev/null 2>&1 || return 1
    if docker compose version >/dev/null 2>&1; then
        COMPOSE=(docker compose)
    elif command -v docker-compose >/dev/null 2>&1; then
        COMPOSE=(docker-compose)
    else
        log "a Docker engine answers but neither 'docker compose' nor 'docker-compose' exists;" \
            "skipping Docker (install the compose plugin to use it)"
        return 1
    fi
}
compose() {
    PAMONG_AMQP_PORT=$AMQP_PORT PAMONG_RABBIT_MGMT_PORT=$MGMT_PORT PAMONG_MONGO_PORT=$MONGO_PORT \
        "${COMPOSE[@]}" -f "$COMPOSE_FILE" "$@"
}

# ------------------------------------------------------------------------------- RabbitMQ ---
RABBIT_SERVER="" RABBITMQCTL=""
find_rabbit() {
    # Debian's /usr/sbin wrappers `su rabbitmq` and drop our environment: call the real scripts
    local dir in_path=""
    in_path=$(command -v rabbitmq-server 2>/dev/null || true)
    for dir in /usr/lib/rabbitmq/bin ${in_path:+"$(dirname "$in_path")"} /usr/local/sbin /usr/sbin; do
        if [[ -x "$dir/rabbitmq-server" && -x "$dir/rabbitmqctl" ]] && ! grep -q 'su rabbitmq' "$dir/rabbitmq-server" 2>/dev/null; then
            RABBIT_SERVER="$dir/rabbitmq-server" RABBITMQCTL="$dir/rabbitmqctl"
            return 0
        fi
    done
    return 1
}

ensure_rabbit_installed() {
    find_rabbit && return 0
    local hint=("or run a Docker engine (deploy/compose.yaml is used then)"
        "or point AMQP_URI (and RABBIT_MANAGEMENT_URL) at a running RabbitMQ 3.10+ with the management plugin")
    [[ "${PAMONG_NO_INSTALL:-0}" == 1 ]] &&
        die "rabbitmq-server is not installed (and PAMONG_NO_INSTALL=1)" \
            "install it: apt-get install rabbitmq-server" "${hint[@]}"
    command -v apt-get >/dev/null 2>&1 ||
        die "rabbitmq-server is not installed and there is no apt-get to install it" \
            "install RabbitMQ 3.10+ with your OS package manager (https://www.rabbitmq.com/docs/download)" "${hint[@]}"
    [[ $(id -u) == 0 ]] ||
        die "rabbitmq-server is not installed and only root may install it" \
            "install it: sudo apt-get install rabbitmq-server" "${hint[@]}"
    log "installing rabbitmq-server with apt-get (the system service is not started)"
    # policy-rc.d 101 = do not start services from maintainer scripts: we only want the programs
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added_policy=1
    fi
    local rc=0
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rabbitmq-server; } >&2 || rc=$?
    [[ $added_policy == 1 ]] && rm -f "$policy"
    [[ $rc == 0 ]] || die "apt-get install rabbitmq-server failed (exit $rc)" "see the apt output above" "${hint[@]}"
    find_rabbit || die "rabbitmq-server was installed but its scripts were not found in /usr/lib/rabbitmq/bin"
}

rabbit_settings_now() { printf 'node=%s amqp=%s mgmt=%s dist=%s' "$NODENAME" "$AMQP_PORT" "$MGMT_PORT" "$DIST_PORT"; }

# environment of the private node and of rabbitmqctl talking to it (same HOME -> same cookie)
rabbit_env() { # node amqp mgmt dist
    printf '%s\n' \
        "HOME=$RABBIT_DIR/home" \
        "RABBITMQ_NODENAME=$1" \
        "RABBITMQ_CONF_ENV_FILE=$RABBIT_DIR/rabbitmq-env.conf" \
        "RABBITMQ_CONFIG_FILE=$RABBIT_DIR/rabbitmq.conf" \
        "RABBITMQ_ADVANCED_CONFIG_FILE=$RABBIT_DIR/advanced.config" \
        "RABBITMQ_ENABLED_PLUGINS_FILE=$RABBIT_DIR/enabled_plugins" \
        "RABBITMQ_MNESIA_BASE=$RABBIT_DIR/mnesia" \
        "RABBITMQ_LOG_BASE=$RABBIT_DIR/log" \
        "RABBITMQ_LOGS=$RABBIT_DIR/log/rabbit.log" \
        "RABBITMQ_PID_FILE=$RABBIT_PID" \
        "RABBITMQ_DIST_PORT=$4" \
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
}

rabbit_native_pid() { # pid of our running node, or nothing
    local pid node
    pid=$(read_pid "$RABBIT_PID")
    node=$(sed -n 's/.*node=\([^ ]*\).*/\1/p' "$RABBIT_SETTINGS" 2>/dev/null || true)
    # the node's command line does not name it; its environment does
    [[ -n "$pid" && -n "$node" ]] && pid_matches "$pid" "RABBITMQ_PID_FILE=$RABBIT_PID" && echo "$pid"
    return 0
}
rabbit_launcher_pid() {
    local pid
    pid=$(read_pid "$RABBIT_LAUNCHER_PID")
    [[ -n "$pid" ]] && pid_matches "$pid" "RABBITMQ_PID_FILE=$RABBIT_PID" && echo "$pid"
    return 0
}
rabbit_native_running() { [[ -n "$(rabbit_native_pid)$(rabbit_launcher_pid)" ]]; }

rabbit_native_stop() {
    local pid launcher node amqp mgmt dist
    pid=$(rabbit_native_pid)
    launcher=$(rabbit_launcher_pid)
    if [[ -n "$pid" ]]; then
        read -r node amqp mgmt dist < <(sed 's/[a-z]*=//g' "$RABBIT_SETTINGS")
        find_rabbit || true
        log "stopping RabbitMQ node $node (pid $pid)"
        local -a env_vars
        mapfile -t env_vars < <(rabbit_env "$node" "$amqp" "$mgmt" "$dist")
        if [[ -z "$RABBITMQCTL" ]] || ! env "${env_vars[@]}" timeout 60 "$RABBITMQCTL" -n "$node" stop "$RABBIT_PID" >/dev/null 2>&1; then
            log "rabbitmqctl stop did not work; sending SIGTERM to pid $pid"
            kill -TERM "$pid" 2>/dev/null || true
        fi
    fi
    if [[ -n "$launcher" ]]; then
        # the launcher's process group holds the launcher script and the node (setsid)
        kill -TERM -- "-$launcher" 2>/dev/null || kill -TERM "$launcher" 2>/dev/null || true
    fi
    local i
    for ((i = 1; i <= 150; i++)); do
        pid_alive "$pid" || session_alive "$launcher" || break
        # a node still booting ignores SIGTERM: repeat it until it listens
        if ((i % 10 == 0)) && [[ -n "$launcher" ]]; then kill -TERM -- "-$launcher" 2>/dev/null || true; fi
        sleep 0.2
    done
    if pid_alive "$pid" || session_alive "$launcher"; then
        log "RabbitMQ did not stop within 30 s; sending SIGKILL"
        if [[ -n "$launcher" ]]; then kill -KILL -- "-$launcher" 2>/dev/null || true; fi
        if [[ -n "$pid" ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$RABBIT_PID" "$RABBIT_LAUNCHER_PID"
}

rabbit_write_config() {
    mkdir -p "$RABBIT_DIR/home" "$RABBIT_DIR/mnesia" "$RABBIT_DIR/log"
    chmod 700 "$RABBIT_DIR/home"
    : >"$RABBIT_DIR/rabbitmq-env.conf" # shadows /etc/rabbitmq/rabbitmq-env.conf
    printf '[rabbitmq_management].\n' >"$RABBIT_DIR/enabled_plugins"
    cat >"$RABBIT_DIR/rabbitmq.conf" <<EOF
# written by deploy/local/stack.sh; regenerated on every start
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
management.tcp.ip = 127.0.0.1
management.tcp.port = $MGMT_PORT
log.file.level = info
EOF
    printf '%s\n' "$(rabbit_settings_now)" >"$RABBIT_SETTINGS"
}

rabbit_ports_check() {
    local port p var use
    for port in "$AMQP_PORT|PAMONG_AMQP_PORT|AMQP_URI=amqp://guest:guest@127.0.0.1:$AMQP_PORT/" \
        "$MGMT_PORT|PAMONG_RABBIT_MGMT_PORT|RABBIT_MANAGEMENT_URL=http://guest:guest@127.0.0.1:$MGMT_PORT" \
        "$DIST_PORT|PAMONG_RABBIT_DIST_PORT|PAMONG_RABBIT_DIST_PORT=<another port>"; do
        IFS='|' read -r p var use <<<"$port"
        if tcp_open 127.0.0.1 "$p"; then port_taken_msg "$var" "$p" "$use"; fi
    done
}

rabbit_native_start() { # start in the background; rabbit_wait follows
    rabbit_write_config
    rm -f "$RABBIT_PID"
    local -a env_vars
    mapfile -t env_vars < <(rabbit_env "$NODENAME" "$AMQP_PORT" "$MGMT_PORT" "$DIST_PORT")
    log "starting RabbitMQ node $NODENAME (AMQP 127.0.0.1:$AMQP_PORT, management :$MGMT_PORT," \
        "distribution :$DIST_PORT; logs $RABBIT_DIR/log/)"
    # setsid -f: own session and process group (Ctrl-C in the caller's terminal does not reach
    # it), not our child (it outlives this script)
    # shellcheck disable=SC2016 # $$ and "$@" belong to the inner bash
    (cd "$RABBIT_DIR" && setsid -f bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$RABBIT_LAUNCHER_PID" \
        env "${env_vars[@]}" "$RABBIT_SERVER" >>"$RABBIT_DIR/log/startup.log" 2>&1 </dev/null 9>&-)
    local i
    for ((i = 0; i < 50; i++)); do [[ -s "$RABBIT_LAUNCHER_PID" ]] && break; sleep 0.1; done
}

rabbit_fail() {
    log "last lines of $RABBIT_DIR/log/startup.log:"
    tail -n 20 "$RABBIT_DIR/log/startup.log" >&2 2>/dev/null || true
    log "last lines of $RABBIT_DIR/log/rabbit.log:"
    tail -n 30 "$RABBIT_DIR/log/rabbit.log" >&2 2>/dev/null || true
    die "$@"
}

rabbit_wait() { # amqp-uri mgmt-url timeout [native]
    local uri=$1 url=$2 limit=$3 native=${4:-} start
    start=$(now)
    local deadline=$((SECONDS + limit))
    while ((SECONDS < deadline)); do
        if [[ -n "$native" && -z "$(rabbit_launcher_pid)$(rabbit_native_pid)" ]]; then
            rabbit_fail "the RabbitMQ node exited during start-up (see the logs above)"
        fi
        if probe amqp "$uri" 2>/dev/null && probe mgmt "$url" 2>/dev/null; then
            log "RabbitMQ answers (AMQP and management API) after $(since "$start") s"
            return 0
        fi
        sleep 0.5
    done
    [[ -n "$native" ]] && rabbit_fail "RabbitMQ did not answer within $limit s" \
        "raise PAMONG_START_TIMEOUT if this machine is slow"
    die "RabbitMQ at $uri / $url did not answer within $limit s"
}

# ------------------------------------------------------------------------------- FerretDB ---
fdb_patches() { # the patch files, in order, leaving out those named in $@ (file names)
    local p skip
    for p in "$FDB_PATCHES"/*.patch; do
        [[ -e "$p" ]] || continue
        for skip in "$@"; do [[ "$(basename "$p")" == "$skip" ]] && continue 2; done
        echo "$p"
    done
}
fdb_stamp_want() { # version and a hash of the patches given as $@
    local hash=nopatch
    (($#)) && hash=$(cat "$@" | sha1sum | cut -c1-12)
    echo "$FERRETDB_VERSION $hash"
}

find_go() {
    if command -v go >/dev/null 2>&1; then
        command -v go
    elif [[ -x /usr/local/go/bin/go ]]; then
        echo /usr/local/go/bin/go
    fi
}

ensure_ferretdb_built() { # [binary [patch to leave out...]]: build it when missing or stale
    local bin=${1:-$FDB_BIN} want patches
    shift || true
    mapfile -t patches < <(fdb_patches "$@")
    want=$(fdb_stamp_want "${patches[@]}")
    if [[ -x "$bin" ]]; then
        if [[ ! -f "$bin.stamp" && "$want" == "$FERRETDB_VERSION nopatch" ]]; then
            echo "$want" >"$bin.stamp" # built by hand with the documented recipe
        fi
        [[ "$(cat "$bin.stamp" 2>/dev/null)" == "$want" ]] && return 0
        log "FerretDB binary $bin is out of date (have '$(cat "$bin.stamp" 2>/dev/null)', want '$want'): rebuilding"
    fi
    build_ferretdb "$want" "$bin" "${patches[@]}"
}

build_ferretdb() { # want binary patch...
    local want=$1 bin=$2 go start moddir src
    shift 2
    go=$(find_go)
    [[ -n "$go" ]] || die "FerretDB is not built yet ($bin) and Go is not installed" \
        "install Go 1.22+ from https://go.dev/dl/ (e.g. into /usr/local/go), then re-run" \
        "or run a Docker engine, or point MONGO_URI at a running MongoDB / FerretDB"
    start=$(now)
    log "building FerretDB $FERRETDB_VERSION with $go ($($go version | awk '{print $3}')); the first build takes minutes"
    mkdir -p "$CACHE/bin"
    export GOPATH="$CACHE/go" GOMODCACHE="$CACHE/go/pkg/mod" GOFLAGS="-modcacherw -buildvcs=false"
    # a plain `go install ...@version` binary panics ("Invalid build/version/version.txt"):
    # build from a writable copy of the module with version.txt filled in
    moddir=$(cd "$CACHE" && "$go" mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" |
        "$PY" -c 'import json, sys; d = json.load(sys.stdin); print(d.get("Dir", "")); sys.exit(1 if d.get("Error") else 0)') ||
        die "go mod download github.com/FerretDB/FerretDB@$FERRETDB_VERSION failed" \
            "it needs the Go module proxy (https://proxy.golang.org) or a GOPROXY mirror"
    rm -rf "$CACHE"/ferretdb-build.* # left by an interrupted build
    src=$(mktemp -d "$CACHE/ferretdb-build.XXXXXX")
    cp -a "$moddir/." "$src/"
    chmod -R u+w "$src"
    echo "$FERRETDB_VERSION" >"$src/build/version/version.txt"
    local p
    for p in "$@"; do
        log "applying $(basename "$p")"
        (cd "$src" && patch -p1 --forward --batch <"$p" >&2) || die "FerretDB patch $p does not apply to $FERRETDB_VERSION"
    done
    # the patches' own Go tests (TestPamong* in pamong_*_test.go; not the packages' other
    # tests) run before the binary is used
    local tested
    tested=$(cd "$src" && find . -name 'pamong_*_test.go' -printf '%h\n' | sort -u)
    if [[ -n "$tested" ]]; then
        mkdir -p "$src/.git" # FerretDB's test helpers look for the repository root
        # shellcheck disable=SC2086 # one package per line
        (cd "$src" && "$go" test -run '^TestPamong' $tested) >&2 || die "the FerretDB patches' Go tests failed (output above)"
    fi
    (cd "$src" && "$go" build -o "$bin.new" ./cmd/ferretdb) >&2 ||
        die "go build of FerretDB failed (output above)"
    "$bin.new" --version >/dev/null 2>&1 || die "the freshly built FerretDB does not run: $bin.new --version failed"
    mv -f "$bin.new" "$bin"
    echo "$want" >"$bin.stamp"
    rm -rf "$src"
    log "built $bin in $(since "$start") s"
}

check_tmpfs() {
    [[ $DB_TMPFS == 0 || $DB_TMPFS == 1 ]] ||
        die "PAMONG_DB_TMPFS=$DB_TMPFS: use 0 (data kept in .run/ferretdb/) or 1 (throw-away, in /dev/shm)"
    if [[ "$DB_TMPFS" == 1 && ! ( -d /dev/shm && -w /dev/shm ) ]]; then
        die "PAMONG_DB_TMPFS=1 but /dev/shm is missing or not writable" \
            "set PAMONG_DB_TMPFS=0 to keep the data in .run/ferretdb/"
    fi
}
fdb_data_dir() {
    if [[ "$DB_TMPFS" == 1 ]]; then
        echo "$TMPFS_DIR/ferretdb"
    else
        echo "$RUN/ferretdb"
    fi
}
# line 1: port and build of the running server; line 2: where it keeps its data. `up` restarts
# it when either differs from what is asked for (`make run` after `make test` must not keep
# using the test run's throw-away tmpfs data)
fdb_settings_now() { printf 'port=%s binary=%s gogc=%s memlimit=%s' "$MONGO_PORT" \
    "$(cat "$FDB_STAMP" 2>/dev/null)" "$FERRETDB_GOGC" "$FERRETDB_MEMLIMIT"; }
fdb_running_data() { sed -n 's/^data=//p' "$FDB_SETTINGS" 2>/dev/null; }

fdb_native_pid() {
    local pid port
    pid=$(read_pid "$FDB_PID")
    port=$(sed -n 's/^port=\([0-9]*\).*/\1/p' "$FDB_SETTINGS" 2>/dev/null || true)
    [[ -n "$pid" && -n "$port" ]] && pid_matches "$pid" "--listen-addr=127.0.0.1:$port" && echo "$pid"
    return 0
}

fdb_native_stop() {
    local pid i
    pid=$(fdb_native_pid)
    if [[ -n "$pid" ]]; then
        log "stopping FerretDB (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 75; i++)); do pid_alive "$pid" || break; sleep 0.2; done
        if pid_alive "$pid"; then
            log "FerretDB did not stop within 15 s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$FDB_PID"
}

fdb_port_check() {
    if tcp_open 127.0.0.1 "$MONGO_PORT"; then
        port_taken_msg PAMONG_MONGO_PORT "$MONGO_PORT" "MONGO_URI=mongodb://127.0.0.1:$MONGO_PORT/"
    fi
}

fdb_native_start() {
    local data
    data=$(fdb_data_dir)
    mkdir -p "$data" "$RUN"
    printf '%s\ndata=%s\n' "$(fdb_settings_now)" "$data" >"$FDB_SETTINGS"
    log "starting FerretDB on 127.0.0.1:$MONGO_PORT (data $data, log $FDB_LOG)"
    # shellcheck disable=SC2016 # $$ and "$@" belong to the inner bash
    GOGC=$FERRETDB_GOGC GOMEMLIMIT=$FERRETDB_MEMLIMIT setsid -f bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$FDB_PID" \
        "$FDB_BIN" --handler=sqlite "--sqlite-url=file:$data/" "--listen-addr=127.0.0.1:$MONGO_PORT" \
        --telemetry=disable --debug-addr=- --log-level=warn "--state-dir=$data" \
        >>"$FDB_LOG" 2>&1 </dev/null 9>&- # 9: our lock, not theirs
    local i
    for ((i = 0; i < 50; i++)); do [[ -s "$FDB_PID" ]] && break; sleep 0.1; done
}

db_wait() { # uri timeout [native]   (our own servers: plain 127.0.0.1, the fast raw probe)
    local uri=$1 limit=$2 native=${3:-} start host port
    start=$(now)
    read -r host port < <(probe hostport "$uri")
    local deadline=$((SECONDS + limit))
    while ((SECONDS < deadline)); do
        if [[ -n "$native" && -z "$(fdb_native_pid)" ]]; then
            log "last lines of $FDB_LOG:"
            tail -n 30 "$FDB_LOG" >&2 || true
            die "FerretDB exited during start-up (see its log above)"
        fi
        if tcp_open "$host" "$port" && probe mongo-raw "$uri" 2>/dev/null; then
            log "database answers after $(since "$start") s"
            return 0
        fi
        sleep 0.3
    done
    if [[ -n "$native" ]]; then
        log "last lines of $FDB_LOG:"
        tail -n 30 "$FDB_LOG" >&2 || true
    fi
    die "the database at $uri did not answer within $limit s"
}

# ------------------------------------------------------------------------------ commands ---
loopback_port() { # URI: its port when it names this machine (127.0.0.1, localhost), else nothing
    local host port
    read -r host port < <(probe hostport "$1") || return 0
    case $host in 127.0.0.1 | localhost) echo "$port" ;; esac
}
# Which of our own servers a URI names: native, docker, or nothing (someone else's server).
# `env` exports our URIs, so a shell that ran `eval "$(stack.sh env)"` hands them back to `up`:
# they still name servers we manage (to reuse, or restart after `down`), never "external" ones.
ours_rabbit() { # AMQP_URI
    local port
    port=$(loopback_port "$1")
    if [[ -n $port ]] && rabbit_native_running &&
        [[ $port == "$(sed -n 's/.* amqp=\([0-9]*\).*/\1/p' "$RABBIT_SETTINGS" 2>/dev/null)" ]]; then
        echo native
    elif [[ $R_MODE == docker && $1 == "$R_AMQP_URI" ]]; then
        echo docker
    fi
}
ours_db() { # MONGO_URI
    local port
    port=$(loopback_port "$1")
    if [[ -n $port && -n "$(fdb_native_pid)" &&
        $port == "$(sed -n 's/^port=\([0-9]*\).*/\1/p' "$FDB_SETTINGS" 2>/dev/null)" ]]; then
        echo native
    elif [[ $D_MODE == docker && $1 == "$D_MONGO_URI" ]]; then
        echo docker
    fi
}

STARTED=() # what this `up` started, stopped again when it fails
rollback() {
    local what
    for what in "${STARTED[@]}"; do
        case $what in
        rabbit-native) rabbit_native_stop ;;
        db-native) fdb_native_stop ;;
        rabbit-docker) compose rm -s -f rabbitmq >&2 || true ;;
        db-docker) compose rm -s -f mongo >&2 || true ;;
        esac
    done
}

cmd_up() {
    local t0 want_r want_d
    t0=$(now)
    mkdir -p "$RUN"
    load_state
    local prev_r_mode=$R_MODE prev_d_mode=$D_MODE

    # 1. choose, per server
    local mgmt_url=${RABBIT_MANAGEMENT_URL:-} our_r="" our_d=""
    [[ -z "${AMQP_URI:-}" ]] || our_r=$(ours_rabbit "$AMQP_URI")
    [[ -z "${MONGO_URI:-}" ]] || our_d=$(ours_db "$MONGO_URI")
    if [[ -n $our_r ]]; then
        want_r=$our_r # AMQP_URI names the server we run: keep managing it
    elif [[ -n "${AMQP_URI:-}" ]]; then
        if [[ -z "$mgmt_url" ]]; then
            local host
            host=$(probe hostport "$AMQP_URI" | cut -d' ' -f1)
            # credentials of the AMQP URI, management on the default port of the same host
            mgmt_url=$("$PY" -c 'import sys; from urllib.parse import urlsplit, quote; u = urlsplit(sys.argv[1]); print("http://%s:%s@%s:15672" % (quote(u.username or "guest", safe=""), quote(u.password or "guest", safe=""), sys.argv[2]))' "$AMQP_URI" "$host")
        fi
        if probe amqp "$AMQP_URI" && probe mgmt "$mgmt_url"; then
            want_r=external
        else
            log "AMQP_URI=$AMQP_URI (management $mgmt_url) does not answer; starting a RabbitMQ instead"
            want_r=""
        fi
    fi
    if [[ -n $our_d ]]; then
        want_d=$our_d
    elif [[ -n "${MONGO_URI:-}" ]]; then
        if probe mongo "$MONGO_URI"; then
            want_d=external
        else
            log "MONGO_URI=$MONGO_URI does not answer; starting a database instead"
            want_d=""
        fi
    fi
    if [[ -z "${want_r:-}" || -z "${want_d:-}" ]]; then
        local mode=native
        docker_usable && mode=docker
        want_r=${want_r:-$mode}
        want_d=${want_d:-$mode}
    fi

    # 2. preflight for native servers: install / build before anything starts
    [[ $want_r == native ]] && ensure_rabbit_installed
    if [[ $want_d == native ]]; then
        check_tmpfs
        ensure_ferretdb_built
    fi

    trap 'rc=$?; if ((rc != 0)) && ((${#STARTED[@]})); then log "start-up failed: stopping what this run started"; rollback; fi' EXIT

    # 3. start (both in the background), then wait
    # leaving a server we ran before: stop ours (AMQP_URI / MONGO_URI name another server that
    # answers; ours_rabbit / ours_db made sure it is not ours)
    local left=""
    if [[ $want_r != native ]] && rabbit_native_running; then rabbit_native_stop; left+=r; fi
    if [[ $want_d != native && -n "$(fdb_native_pid)" ]]; then fdb_native_stop; left+=d; fi
    if [[ $want_r != docker && $prev_r_mode == docker ]] && docker_usable; then compose rm -s -f rabbitmq >&2 || true; left+=r; fi
    if [[ $want_d != docker && $prev_d_mode == docker ]] && docker_usable; then compose rm -s -f mongo >&2 || true; left+=d; fi
    # the external server must still answer now that ours stopped (else it was ours after all)
    if [[ $left == *r* && $want_r == external ]] && ! probe amqp "$AMQP_URI"; then
        die "AMQP_URI=$AMQP_URI stopped answering when our RabbitMQ stopped" \
            "unset AMQP_URI (and RABBIT_MANAGEMENT_URL) and run up again to start ours"
    fi
    if [[ $left == *d* && $want_d == external ]] && ! probe mongo "$MONGO_URI"; then
        die "MONGO_URI=$MONGO_URI stopped answering when our database stopped" \
            "unset MONGO_URI and run up again to start ours"
    fi

    # our native servers: reuse when the settings match, else stop; then check the ports are
    # free for everything that must start, before starting anything
    local start_r="" start_d=""
    if [[ $want_r == native ]]; then
        if rabbit_native_running; then
            if [[ "$(cat "$RABBIT_SETTINGS" 2>/dev/null)" == "$(rabbit_settings_now)" ]]; then
                log "RabbitMQ: our node $NODENAME already runs (pid $(rabbit_native_pid)); reusing it"
            else
                log "RabbitMQ: our node runs with other settings ($(cat "$RABBIT_SETTINGS")); restarting it"
                rabbit_native_stop
            fi
        elif [[ -e "$RABBIT_PID" || -e "$RABBIT_LAUNCHER_PID" ]]; then
            log "RabbitMQ: removing stale pid files"
            rm -f "$RABBIT_PID" "$RABBIT_LAUNCHER_PID"
        fi
        rabbit_native_running || start_r=1
    fi
    if [[ $want_d == native ]]; then
        if [[ -n "$(fdb_native_pid)" ]]; then
            if [[ "$(head -n1 "$FDB_SETTINGS" 2>/dev/null)" != "$(fdb_settings_now)" ]]; then
                log "database: our FerretDB runs with other settings ($(head -n1 "$FDB_SETTINGS")); restarting it"
                fdb_native_stop
            elif [[ "$(fdb_running_data)" != "$(fdb_data_dir)" ]]; then
                log "database: our FerretDB keeps its data in $(fdb_running_data), PAMONG_DB_TMPFS=$DB_TMPFS" \
                    "asks for $(fdb_data_dir): restarting it there (the other data stays where it is)"
                fdb_native_stop
            else
                log "database: our FerretDB already runs (pid $(fdb_native_pid), data $(fdb_running_data)); reusing it"
            fi
        elif [[ -e "$FDB_PID" ]]; then
            log "database: removing stale pid file $FDB_PID"
            rm -f "$FDB_PID"
        fi
        [[ -n "$(fdb_native_pid)" ]] || start_d=1
    fi
    [[ -n $start_r ]] && rabbit_ports_check
    [[ -n $start_d ]] && fdb_port_check

    case $want_r in
    external)
        R_MODE=external R_AMQP_URI=$AMQP_URI R_MGMT_URL=$mgmt_url
        log "RabbitMQ: using $AMQP_URI (answers)"
        ;;
    docker | native)
        R_MODE=$want_r R_AMQP_URI="amqp://guest:guest@127.0.0.1:$AMQP_PORT/" R_MGMT_URL="http://guest:guest@127.0.0.1:$MGMT_PORT"
        ;;
    esac
    case $want_d in
    external)
        D_MODE=external D_MONGO_URI=$MONGO_URI D_DATA=""
        log "database: using $MONGO_URI (answers)"
        ;;
    docker)
        D_MODE=docker D_MONGO_URI="mongodb://127.0.0.1:$MONGO_PORT/?directConnection=true" D_DATA="docker volume"
        ;;
    native)
        D_MODE=native D_MONGO_URI="mongodb://127.0.0.1:$MONGO_PORT/" D_DATA=$(fdb_data_dir)
        ;;
    esac

    if [[ -n $start_r ]]; then
        STARTED+=(rabbit-native)
        rabbit_native_start
    fi
    if [[ -n $start_d ]]; then
        STARTED+=(db-native)
        fdb_native_start
    fi

    local services=()
    [[ $want_r == docker ]] && services+=(rabbitmq)
    [[ $want_d == docker ]] && services+=(mongo)
    if ((${#services[@]})); then
        log "starting ${services[*]} with ${COMPOSE[*]} -f deploy/compose.yaml (first run pulls images)"
        [[ $want_r == docker ]] && STARTED+=(rabbit-docker)
        [[ $want_d == docker ]] && STARTED+=(db-docker)
        compose up -d "${services[@]}" >&2 || die "'${COMPOSE[*]} up -d ${services[*]}' failed (output above)"
    fi

    case $want_d in
    native) db_wait "$D_MONGO_URI" "$START_TIMEOUT" native ;;
    docker) db_wait "$D_MONGO_URI" $((START_TIMEOUT * 2)) ;;
    esac
    case $want_r in
    native) rabbit_wait "$R_AMQP_URI" "$R_MGMT_URL" "$START_TIMEOUT" native ;;
    docker) rabbit_wait "$R_AMQP_URI" "$R_MGMT_URL" $((START_TIMEOUT * 2)) ;;
    esac
    # an AMQP_URI on our port names the server we run: keep it as given (its user, its vhost)
    # when it answers there; ours_rabbit only decided that we manage that server
    if [[ $want_r != external && -n "${AMQP_URI:-}" && $AMQP_URI != "$R_AMQP_URI" &&
        "$(loopback_port "$AMQP_URI")" == "$AMQP_PORT" ]]; then
        if probe amqp "$AMQP_URI"; then
            R_AMQP_URI=$AMQP_URI
        else
            log "RabbitMQ: AMQP_URI=$AMQP_URI does not answer on our node (its user or vhost?); using $R_AMQP_URI"
        fi
    fi

    save_state
    trap - EXIT
    log "up in $(since "$t0") s: RabbitMQ $R_MODE $R_AMQP_URI; database $D_MODE $D_MONGO_URI${D_DATA:+ (data: $D_DATA)}"
}

cmd_down() { # [rabbitmq] [db]: both when none is named
    local want_r=1 want_d=1
    if (($#)); then
        want_r=0 want_d=0
        local arg
        for arg in "$@"; do
            case $arg in
            rabbitmq) want_r=1 ;;
            db) want_d=1 ;;
            *) die "usage: stack.sh down [rabbitmq] [db]" ;;
            esac
        done
    fi
    load_state
    if ((want_r)); then
        if rabbit_native_running; then rabbit_native_stop; fi
        rm -f "$RABBIT_PID" "$RABBIT_LAUNCHER_PID"
    fi
    if ((want_d)); then
        if [[ -n "$(fdb_native_pid)" ]]; then fdb_native_stop; fi
        rm -f "$FDB_PID"
    fi
    local services=()
    ((want_r)) && [[ $R_MODE == docker ]] && services+=(rabbitmq)
    ((want_d)) && [[ $D_MODE == docker ]] && services+=(mongo)
    if ((${#services[@]})); then
        if docker_usable; then
            log "stopping ${services[*]} (compose; named volumes are kept)"
            compose rm -s -f "${services[@]}" >&2
        else
            log "the state says Docker ran ${services[*]}, but no Docker engine answers: nothing to stop there"
        fi
    fi
    if ((want_r)) && [[ $R_MODE == external ]]; then log "RabbitMQ at $R_AMQP_URI is not ours: left running"; fi
    if ((want_d)) && [[ $D_MODE == external ]]; then log "the database at $D_MONGO_URI is not ours: left running"; fi
    # forget what stopped, keep the rest: `up` then knows the other server is still ours, and
    # `env` / `status` say the stack is not whole until `up`
    if ((want_r)); then R_MODE="" R_AMQP_URI="" R_MGMT_URL=""; fi
    if ((want_d)); then D_MODE="" D_MONGO_URI="" D_DATA=""; fi
    if [[ -n $R_MODE$D_MODE ]]; then save_state; else rm -f "$STATE"; fi
    log "down${1:+ ($*)}"
}

cmd_status() {
    load_state
    if [[ ! -f "$STATE" ]]; then
        local extra=""
        rabbit_native_running && extra+=" (a native RabbitMQ node of ours runs: pid $(rabbit_native_pid))"
        [[ -n "$(fdb_native_pid)" ]] && extra+=" (our FerretDB runs: pid $(fdb_native_pid))"
        echo "not up$extra"
        return 3
    fi
    local ok=0 a m d info pid
    if [[ -n $R_MODE ]]; then
        a=answers m=answers info=""
        probe amqp "$R_AMQP_URI" 2>/dev/null || { a="DOES NOT ANSWER"; ok=1; }
        probe mgmt "$R_MGMT_URL" 2>/dev/null || { m="DOES NOT ANSWER"; ok=1; }
        if [[ $R_MODE == native ]]; then
            pid=$(rabbit_native_pid)
            info=" (node $(sed 's/ .*//; s/node=//' "$RABBIT_SETTINGS" 2>/dev/null), ${pid:+pid }${pid:-process gone}, logs .run/rabbitmq/log/)"
        fi
        printf 'rabbitmq    %-8s %s  %s%s\n' "$R_MODE" "$R_AMQP_URI" "$a" "$info"
        printf 'management  %-8s %s  %s\n' "$R_MODE" "$R_MGMT_URL" "$m"
    else
        printf 'rabbitmq    not up (stopped by down; deploy/local/stack.sh up starts it)\n'
    fi
    if [[ -n $D_MODE ]]; then
        d=answers info=""
        probe mongo "$D_MONGO_URI" 2>/dev/null || { d="DOES NOT ANSWER"; ok=1; }
        if [[ $D_MODE == native ]]; then
            pid=$(fdb_native_pid)
            info=" (FerretDB, ${pid:+pid }${pid:-process gone}, data $D_DATA, log .run/ferretdb.log)"
        fi
        printf 'database    %-8s %s  %s%s\n' "$D_MODE" "$D_MONGO_URI" "$d" "$info"
    else
        printf 'database    not up (stopped by down; deploy/local/stack.sh up starts it)\n'
    fi
    [[ -n $R_MODE && -n $D_MODE ]] || return 3
    return $ok
}

cmd_env() {
    load_state
    [[ -f "$STATE" ]] || die "the stack is not up" "run: deploy/local/stack.sh up   (or: make up)"
    [[ -n $R_MODE ]] || die "the stack is not whole: RabbitMQ is down (deploy/local/stack.sh down rabbitmq)" \
        "run: deploy/local/stack.sh up   (or: make up)"
    [[ -n $D_MODE ]] || die "the stack is not whole: the database is down (deploy/local/stack.sh down db)" \
        "run: deploy/local/stack.sh up   (or: make up)"
    printf 'export AMQP_URI=%q\n' "$R_AMQP_URI"
    printf 'export RABBIT_MANAGEMENT_URL=%q\n' "$R_MGMT_URL"
    printf 'export MONGO_URI=%q\n' "$D_MONGO_URI"
    printf 'export PAMONG_STACK_RABBIT=%q PAMONG_STACK_DB=%q PAMONG_STACK_DB_DATA=%q\n' "$R_MODE" "$D_MODE" "$D_DATA"
}

cmd_clean() {
    cmd_down
    rm -rf "$RUN"
    log "removed .run/"
    if [[ -d "$TMPFS_DIR" ]]; then
        rm -rf "$TMPFS_DIR"
        log "removed $TMPFS_DIR"
    fi
}

cmd_ferretdb_without() { # build (once) FerretDB without the named patches; print its path
    (($#)) || die "usage: stack.sh ferretdb-without <patch file name>..."
    local p
    for p in "$@"; do [[ -f "$FDB_PATCHES/$p" ]] || die "no patch $FDB_PATCHES/$p"; done
    local bin
    bin="$CACHE/bin/ferretdb-without-$(printf '%s\n' "$@" | sha1sum | cut -c1-8)"
    ensure_ferretdb_built "$bin" "$@"
    echo "$bin"
}

cmd_is_running() {
    load_state
    case ${1:-} in
    rabbitmq) rabbit_native_running || [[ $R_MODE == docker ]] ;;
    db) [[ -n "$(fdb_native_pid)" || $D_MODE == docker ]] ;;
    *) die "usage: stack.sh is-running rabbitmq|db" ;;
    esac
}

# one up/down/clean at a time per checkout (make -j, two terminals)
lock() {
    mkdir -p "$RUN"
    command -v flock >/dev/null 2>&1 || return 0
    exec 9>"$RUN/.lock"
    if ! flock -n 9; then
        log "waiting for another stack.sh in this checkout to finish"
        flock -w 900 9 || die "another deploy/local/stack.sh still holds $RUN/.lock after 15 min"
    fi
}

case ${1:-} in
up | down | stop | clean) lock ;;
esac
case ${1:-} in
up) cmd_up ;;
down | stop) shift; cmd_down "$@" ;;
status) cmd_status ;;
env) cmd_env ;;
clean) cmd_clean ;;
is-running) cmd_is_running "${2:-}" ;;
ferretdb-without) shift; lock; cmd_ferretdb_without "$@" ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
