#!/usr/bin/env bash
# What the pages need beyond Python, set up as deploy/local/stack.sh sets up the servers:
# installed when missing, with a clear message naming the missing piece otherwise.
#   assets   the front-end libraries pinned in web/package.json + web/package-lock.json
#            (`npm ci` in web/, node_modules git-ignored; npm itself installed with apt-get
#            when missing and we are root), copied into the git-ignored
#            pamong/web/static/vendor/ that the pages serve under /aset/vendor/:
#              uplot/dist/uPlot.iife.min.js, uplot/dist/uPlot.min.css  (charts, shipped)
#              axe-core/axe.min.js                                     (tests only)
#            `make assets` runs it when web/package*.json changed (a stamp in vendor/)
#   ensure   Chromium and ChromeDriver for the browser tests (tests/browser/): Debian's
#            `chromium` and `chromium-driver` (+ fonts-liberation, so screenshots have text),
#            installed with apt-get when missing and we are root; their versions must agree.
#            `make test-setup` runs it
#   paths    ensure, then print the two programs' paths (one a line)
#   check    exit 0 when both are there and agree, 1 otherwise (installs nothing)
#
# Settings (environment):
#   PAMONG_CHROMIUM (/usr/bin/chromium)  PAMONG_CHROMEDRIVER (/usr/bin/chromedriver)
#                        another Chromium / ChromeDriver pair (tests/browser reads the same)
#   PAMONG_NO_INSTALL (0)  1: never apt-get install npm or Chromium (fail with the command instead)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WEB="$ROOT/web"
VENDOR="$ROOT/pamong/web/static/vendor"
VENDOR_STAMP="$VENDOR/.installed"
CHROMIUM=${PAMONG_CHROMIUM:-/usr/bin/chromium}
CHROMEDRIVER=${PAMONG_CHROMEDRIVER:-/usr/bin/chromedriver}
APT_PACKAGES=(chromium chromium-driver fonts-liberation)

# package-relative source -> name under pamong/web/static/vendor/
VENDOR_FILES=(
    "uplot/dist/uPlot.iife.min.js:uPlot.iife.min.js"
    "uplot/dist/uPlot.min.css:uPlot.min.css"
    "axe-core/axe.min.js:axe.min.js"
)

log() { printf 'browser: %s\n' "$*" >&2; }
die() {
    printf 'browser: ERROR: %s\n' "$1" >&2
    shift
    local line
    for line in "$@"; do printf '       %s\n' "$line" >&2; done
    exit 1
}

# ---------------------------------------------------------------------------------- assets ---
assets() {
    [[ -f "$WEB/package.json" && -f "$WEB/package-lock.json" ]] ||
        die "web/package.json or web/package-lock.json is missing (they pin the front-end libraries)"
    if ! command -v npm >/dev/null 2>&1; then
        apt_install "npm is missing" "npm" \
            "npm installs the front-end libraries pinned in web/package-lock.json" \
            "(uPlot for the dashboard's charts, axe-core for the browser tests); Node.js 18+ has it"
        command -v npm >/dev/null 2>&1 || die "apt-get installed npm but there is still no npm command"
    fi
    log "npm ci in web/ (versions from web/package-lock.json)"
    # --ignore-scripts: no package's install script runs; nothing we use needs one
    (cd "$WEB" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2) ||
        die "npm ci in web/ failed (see its output above)" \
            "the npm registry must be reachable, or its packages in npm's cache (~/.npm)"
    mkdir -p "$VENDOR"
    local entry source name
    for entry in "${VENDOR_FILES[@]}"; do
        source="$WEB/node_modules/${entry%%:*}" name=${entry#*:}
        [[ -s "$source" ]] || die "web/node_modules/${entry%%:*} is missing after npm ci" \
            "is the package still pinned in web/package.json?"
        install -m 0644 "$source" "$VENDOR/$name.tmp"
        mv "$VENDOR/$name.tmp" "$VENDOR/$name"
    done
    touch "$VENDOR_STAMP"
    log "front-end libraries in pamong/web/static/vendor/: $(cd "$VENDOR" && echo *)"
}

# -------------------------------------------------------------------- Chromium, ChromeDriver ---
major() { # the major version in `<program> --version`'s answer, or nothing
    "$1" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1 | cut -d. -f1
}

have_browser() { [[ -x "$CHROMIUM" && -x "$CHROMEDRIVER" ]]; }

versions_agree() {
    local browser driver
    browser=$(major "$CHROMIUM") driver=$(major "$CHROMEDRIVER")
    [[ -n "$browser" && "$browser" == "$driver" ]]
}

# apt_install WHAT-IS-WRONG "PACKAGE..." HINT...: install with apt-get when allowed, else fail
# with the command to run
apt_install() {
    local problem=$1 packages=$2
    shift 2
    local hint=("$@")
    [[ "${PAMONG_NO_INSTALL:-0}" == 1 ]] &&
        die "$problem (and PAMONG_NO_INSTALL=1)" "install: apt-get install $packages" "${hint[@]}"
    command -v apt-get >/dev/null 2>&1 ||
        die "$problem and there is no apt-get to install $packages" \
            "install it with your OS package manager" "${hint[@]}"
    [[ $(id -u) == 0 ]] ||
        die "$problem and only root may install $packages" "install: sudo apt-get install $packages" "${hint[@]}"
    log "$problem: installing $packages with apt-get"
    local rc=0
    # shellcheck disable=SC2086 # a list of package names
    { apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $packages; } >&2 ||
        rc=$?
    [[ $rc == 0 ]] || die "apt-get install $packages failed (exit $rc)" "see the apt output above" "${hint[@]}"
}

install_browser() {
    apt_install "$1" "${APT_PACKAGES[*]}" \
        "the browser tests (tests/browser/) drive Debian's Chromium with its ChromeDriver" \
        "another pair: export PAMONG_CHROMIUM=/path/to/chromium PAMONG_CHROMEDRIVER=/path/to/chromedriver"
}

ensure() {
    if ! have_browser; then
        local missing
        if [[ ! -x "$CHROMIUM" && ! -x "$CHROMEDRIVER" ]]; then
            missing="Chromium ($CHROMIUM) and ChromeDriver ($CHROMEDRIVER) are"
        elif [[ ! -x "$CHROMIUM" ]]; then
            missing="Chromium ($CHROMIUM) is"
        else
            missing="ChromeDriver ($CHROMEDRIVER) is"
        fi
        if [[ "$CHROMIUM" != /usr/bin/chromium || "$CHROMEDRIVER" != /usr/bin/chromedriver ]]; then
            die "$missing missing" "PAMONG_CHROMIUM / PAMONG_CHROMEDRIVER name programs that do not exist"
        fi
        install_browser "$missing not installed"
        have_browser || die "apt-get installed ${APT_PACKAGES[*]} but $CHROMIUM or $CHROMEDRIVER is still missing"
    elif ! versions_agree && [[ "$CHROMIUM" == /usr/bin/chromium && "$CHROMEDRIVER" == /usr/bin/chromedriver ]]; then
        # Debian upgrades one without the other only by hand: bring both to the same release
        install_browser "Chromium $(major "$CHROMIUM") and ChromeDriver $(major "$CHROMEDRIVER") differ"
    fi
    versions_agree || die "Chromium ($CHROMIUM: $("$CHROMIUM" --version 2>&1 | head -1)) and ChromeDriver" \
        "($CHROMEDRIVER: $("$CHROMEDRIVER" --version 2>&1 | head -1)) are not the same major version" \
        "Debian: apt-get install ${APT_PACKAGES[*]} (both from the same release)"
    log "$("$CHROMIUM" --version 2>/dev/null | head -1) with $("$CHROMEDRIVER" --version 2>/dev/null | head -1 | cut -d' ' -f1-2)"
    printf '%s\n%s\n' "$CHROMIUM" "$CHROMEDRIVER"
}

case "${1:-}" in
    assets) assets ;;
    ensure) ensure >/dev/null ;;
    paths) ensure ;;
    check) have_browser && versions_agree ;;
    *)
        echo "usage: $0 assets|ensure|paths|check" >&2
        exit 2
        ;;
esac
