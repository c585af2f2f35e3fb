#!/usr/bin/env bash
# Smoke test of the double-click bundle: build it, then use it the way a user would, on a fresh data dir.
#
#  1. builds dist/training-studio with PyInstaller (packaging/training-studio.spec);
#  2. `serve --help`, `train --help` and `--version` work with no display (they must not touch Qt);
#  3. starts the bundle's GUI offscreen on a fresh data dir: it must start its own embedded server
#     (the bundle relaunched as `serve`) and reach the connected state within 60 s (its log says
#     "connected to http://127.0.0.1:…");
#  4. through that server (url + token from <data dir>/server.json, driven by packaging/smoke_drive.py
#     with the venv's Python, not the bundle's) creates an image dataset and trains the built-in model
#     (the bundle relaunched as `train`) to `completed`;
#  5. closes the GUI (the server must keep running), starts a second, long job and once it runs,
#     `training-studio --data-dir D --screenshot out.png --quit-after S`, which must exit 0, reuse the
#     server, write a real, non-blank PNG of the main window, and log (in its own lines of the GUI log)
#     that it connected and that it shows the job completed in step 4, finished before it started, as
#     a recently finished job; then cancels the long job (`cancelled`);
#  6. checks the GUI and server logs hold no traceback, then stops the bundle's server through the pid
#     in server.json and checks it exited cleanly.
# Any failure exits non-zero with a message saying which step failed and the logs that explain it.
# Every process started here is stopped at the end, whatever happened.
#
#   packaging/smoke_test.sh [--no-build] [--keep] [--screenshot-to PATH]
#     --no-build        test the bundle already in dist/ (TS_DIST_DIR) instead of building it
#     --keep            keep the temp dir (data dir, logs, screenshot) even on success
#     --screenshot-to   also copy the screenshot there
# Environment: PYTHON (default .venv/bin/python), TS_DIST_DIR (default dist), TS_BUILD_DIR (default build),
#   TS_BUILD_TIMEOUT_S (default 900: the build fails past 15 minutes).
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$REPO_DIR/.venv/bin/python}"
DIST_DIR="${TS_DIST_DIR:-$REPO_DIR/dist}"
BUILD_DIR="${TS_BUILD_DIR:-$REPO_DIR/build}"
BUNDLE_DIR="$DIST_DIR/training-studio"
EXE="$BUNDLE_DIR/training-studio"
DRIVE="$REPO_DIR/packaging/smoke_drive.py"
BUILD_TIMEOUT_S="${TS_BUILD_TIMEOUT_S:-900}"
SERVER_READY_TIMEOUT_S=60
JOB_TIMEOUT_S=180
SCREENSHOT_AFTER_S=8
GUI_CONNECT_TIMEOUT_S=30
COMPLETED_JOB_NAME="bundle smoke job"
PYINSTALLER_PIN="pyinstaller==6.22.3"

build=1 keep=0 screenshot_copy=""
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build=0 ;;
        --keep) keep=1 ;;
        --screenshot-to) shift; screenshot_copy="${1:?--screenshot-to needs a path}" ;;
        -h|--help) sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "smoke: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ts-smoke.XXXXXX")"
DATA="$WORK/data"
GUI_PIDS=()
SERVER_PID=""
status="FAILED"

step() { printf '\n== smoke: %s\n' "$*"; }

show_log() {  # show_log TITLE FILE
    if [ -s "$2" ]; then
        printf -- '--- %s (%s, last 60 lines) ---\n' "$1" "$2" >&2
        tail -n 60 "$2" >&2
    fi
}

fail() {
    echo "smoke: FAILED: $*" >&2
    show_log "GUI output" "$WORK/gui.log"
    show_log "screenshot GUI output" "$WORK/gui-screenshot.log"
    local gui_log
    for gui_log in "${XDG_STATE_HOME:-$WORK/xdg/state}"/training-studio/log/*.log; do
        show_log "GUI log" "$gui_log"
    done
    show_log "server output" "$DATA/server.log"
    show_log "server log" "$DATA/logs/server.log"
    exit 1
}

gui_log_file() {  # the GUI's log: $XDG_STATE_HOME/training-studio/log/training-studio.log (ui.crash)
    echo "${XDG_STATE_HOME:-$WORK/xdg/state}/training-studio/log/training-studio.log"
}

wait_for_log_line() {  # wait_for_log_line FILE FIXED_TEXT SECONDS [FIRST_LINE]: the text appears on a line >= FIRST_LINE
    local file="$1" text="$2" waited=0 first="${4:-1}"
    while [ "$waited" -lt $(($3 * 10)) ]; do
        if [ -f "$file" ] && tail -n "+$first" "$file" | grep -qF -- "$text"; then
            return 0
        fi
        sleep 0.1; waited=$((waited + 1))
    done
    return 1
}

is_our_server() {  # a pid is only signalled if it is still a `serve` of this data dir
    local pid="$1"
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' '\n' 2>/dev/null < "/proc/$pid/cmdline" | grep -qx "serve" &&
        tr '\0' '\n' 2>/dev/null < "/proc/$pid/cmdline" | grep -qxF "$DATA"
}

alive() {  # a zombie counts as gone: the server is not our child, and may wait to be reaped by init
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
    local state
    state="$(sed -n 's/^[0-9]* (.*) \([A-Z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null || true)"
    [ "$state" != "Z" ]
}

stop_pid() {  # stop_pid PID SECONDS: SIGTERM, then SIGKILL after SECONDS
    local pid="$1" waited=0
    kill -TERM "$pid" 2>/dev/null || return 0
    while alive "$pid" && [ "$waited" -lt $(($2 * 10)) ]; do
        sleep 0.1; waited=$((waited + 1))
    done
    if alive "$pid"; then
        echo "smoke: pid $pid ignored SIGTERM for $2 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
}

cleanup() {
    local pid
    for pid in "${GUI_PIDS[@]}"; do
        if alive "$pid"; then stop_pid "$pid" 10; fi
    done
    [ -n "$SERVER_PID" ] || SERVER_PID="$("$PY" "$DRIVE" server-pid "$DATA" 2>/dev/null || true)"
    if is_our_server "$SERVER_PID"; then
        stop_pid "$SERVER_PID" 20
    fi
    # A server that had to be SIGKILLed leaves its trainers behind: stop the bundle's `train`
    # processes working under this test's data dir, found by pid, nothing else.
    local proc_dir args
    for proc_dir in /proc/[0-9]*; do
        args="$(tr '\0' ' ' 2>/dev/null < "$proc_dir/cmdline" || true)"
        case "$args" in
            "$EXE train "*"$DATA/"*) stop_pid "${proc_dir#/proc/}" 5 ;;
        esac
    done
    if [ "$status" = "ok" ] && [ "$keep" = 0 ]; then
        rm -rf -- "$WORK"
    else
        echo "smoke: data dir, logs and screenshot kept in $WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A fresh, private environment: no user settings, no server or token from the caller.
export XDG_CONFIG_HOME="$WORK/xdg/config" XDG_DATA_HOME="$WORK/xdg/data" XDG_CACHE_HOME="$WORK/xdg/cache"
export XDG_STATE_HOME="$WORK/xdg/state" XDG_RUNTIME_DIR="$WORK/xdg/runtime"
mkdir -p "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME" "$XDG_STATE_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
unset TRAINING_STUDIO_SERVER TRAINING_STUDIO_TOKEN TRAINING_STUDIO_DATA_DIR

[ -x "$PY" ] || fail "no Python at $PY (set PYTHON, or create .venv as the README says)"

# 1. build --------------------------------------------------------------------------------------------
if [ "$build" = 1 ]; then
    step "building the bundle"
    "$PY" -m PyInstaller --version >/dev/null 2>&1 ||
        fail "PyInstaller is not installed in $PY's environment: run $(dirname "$PY")/pip install $PYINSTALLER_PIN"
    started=$SECONDS
    build_rc=0
    (cd "$REPO_DIR" && timeout "$BUILD_TIMEOUT_S" "$PY" -m PyInstaller --noconfirm --distpath "$DIST_DIR" \
        --workpath "$BUILD_DIR" packaging/training-studio.spec) > "$WORK/build.log" 2>&1 || build_rc=$?
    if [ "$build_rc" = 124 ]; then
        show_log "PyInstaller log" "$WORK/build.log"
        fail "the build took longer than $BUILD_TIMEOUT_S s (TS_BUILD_TIMEOUT_S)"
    elif [ "$build_rc" != 0 ]; then
        show_log "PyInstaller log" "$WORK/build.log"
        fail "PyInstaller could not build the bundle (exit code $build_rc)"
    fi
    echo "built in $((SECONDS - started)) s"
fi
[ -x "$EXE" ] || fail "no bundle executable at $EXE"
echo "bundle: $EXE ($(du -sh "$BUNDLE_DIR" | cut -f1))"

# 2. subcommands without a display ---------------------------------------------------------------
step "serve --help, train --help and --version without a display"
check_headless() {  # check_headless EXPECTED_TEXT ARGS...
    local expected="$1" out
    shift
    # An unusable Qt platform makes any accidental QApplication abort: these paths must not touch Qt.
    if ! out="$(env -u DISPLAY -u WAYLAND_DISPLAY QT_QPA_PLATFORM=no-such-platform timeout 60 "$EXE" "$@" 2>&1)"; then
        fail "\`training-studio $*\` failed without a display:
$out"
    fi
    grep -qF -- "$expected" <<<"$out" || fail "\`training-studio $*\` did not print \"$expected\":
$out"
    echo "ok: training-studio $*"
}
check_headless "usage: training-studio serve" serve --help
check_headless "usage: training-studio train" train --help
check_headless "training-studio " --version

# 3. GUI with its own embedded server --------------------------------------------------------------
step "GUI offscreen on a fresh data dir, waiting for its embedded server (up to ${SERVER_READY_TIMEOUT_S} s)"
started=$SECONDS
QT_QPA_PLATFORM=offscreen "$EXE" --data-dir "$DATA" --quit-after 900 > "$WORK/gui.log" 2>&1 &
GUI_PIDS+=("$!")
gui_pid="$!"
"$PY" "$DRIVE" wait-server "$DATA" --timeout "$SERVER_READY_TIMEOUT_S" --gui-pid "$gui_pid" ||
    fail "the GUI did not reach the connected state"
SERVER_PID="$("$PY" "$DRIVE" server-pid "$DATA")"
is_our_server "$SERVER_PID" || fail "server.json names pid $SERVER_PID, which is not the bundle's \`serve\` of $DATA"
server_url="$("$PY" "$DRIVE" server-url "$DATA")" || fail "server.json of $DATA names no url"
wait_for_log_line "$(gui_log_file)" "connected to $server_url (server " "$GUI_CONNECT_TIMEOUT_S" ||
    fail "the GUI's log does not say \"connected to $server_url\" within $GUI_CONNECT_TIMEOUT_S s"
echo "GUI to connected state in $((SECONDS - started)) s (server pid $SERVER_PID, relaunched from the bundle)"

# 4. dataset + built-in training job through the bundle's server ---------------------------------
step "dataset and one built-in training job through the bundle's server"
"$PY" "$DRIVE" run-job "$DATA" --steps 40 --timeout "$JOB_TIMEOUT_S" --name "$COMPLETED_JOB_NAME" ||
    fail "the training job did not complete"

# 5. close the GUI, take a screenshot with a new one -------------------------------------------------
step "closing the GUI: the embedded server must keep running"
alive "$gui_pid" || fail "the GUI exited on its own while the job ran"
stop_pid "$gui_pid" 10
wait "$gui_pid" 2>/dev/null || true
alive "$SERVER_PID" || fail "the embedded server (pid $SERVER_PID) stopped when the GUI closed"

# A second, long job is kept running while the screenshot is taken: the window then has a live job row
# next to the completed one, which finished before that GUI started (a recently finished job).
step "starting a long job to show live in the screenshot"
running_job="$("$PY" "$DRIVE" start-running-job "$DATA" --name "bundle smoke running job")" ||
    fail "could not get a second job running"
echo "job $running_job running"

step "screenshot: training-studio --data-dir D --screenshot out.png --quit-after $SCREENSHOT_AFTER_S"
gui_log="$(gui_log_file)"
[ -f "$gui_log" ] || fail "the first GUI wrote no log at $gui_log"
first_new_line=$(($(wc -l < "$gui_log") + 1))  # the screenshot run's lines come after these
rc=0
QT_QPA_PLATFORM=offscreen timeout 120 "$EXE" --data-dir "$DATA" --screenshot "$WORK/out.png" \
    --quit-after "$SCREENSHOT_AFTER_S" > "$WORK/gui-screenshot.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "the screenshot run exited with code $rc"
"$PY" "$DRIVE" check-png "$WORK/out.png" || fail "the screenshot is missing or blank"
now_pid="$("$PY" "$DRIVE" server-pid "$DATA" || true)"
[ "$now_pid" = "$SERVER_PID" ] || fail "the second GUI did not reuse the running server (pid $SERVER_PID, now ${now_pid:-none})"
tail -n "+$first_new_line" "$gui_log" > "$WORK/gui-screenshot-run.log"
grep -qF -- "connected to $server_url (server " "$WORK/gui-screenshot-run.log" ||
    fail "the screenshot run's log (lines $first_new_line+ of $gui_log) does not say \"connected to $server_url\""
# The store logs the names of the finished jobs it adds to the jobs view: the completed job must be one.
grep -E "recently finished job\(s\) of " "$WORK/gui-screenshot-run.log" | grep -qF -- "“$COMPLETED_JOB_NAME”" ||
    fail "the screenshot run does not show the completed job \"$COMPLETED_JOB_NAME\" (no such name in its log:
$(cat "$WORK/gui-screenshot-run.log"))"
echo "ok: the screenshot run connected to $server_url and shows the completed job \"$COMPLETED_JOB_NAME\""
[ -z "$screenshot_copy" ] || cp -- "$WORK/out.png" "$screenshot_copy"

step "cancelling the running job (the bundle's trainer must stop)"
"$PY" "$DRIVE" cancel-job "$DATA" "$running_job" --timeout 60 || fail "cancelling the running job failed"

step "no tracebacks in the GUI and server logs"
# The GUI logs to $XDG_STATE_HOME/training-studio/log/ (training-studio.log; faults.log gets a
# faulthandler dump on a fatal error); the server to <data dir>/logs/server.log.
gui_logs=("$XDG_STATE_HOME"/training-studio/log/*.log)
[ -f "${gui_logs[0]}" ] || fail "the GUI wrote no log in $XDG_STATE_HOME/training-studio/log/"
[ -f "$DATA/logs/server.log" ] || fail "the server wrote no log at $DATA/logs/server.log"
checked=0
for log_file in "$WORK/gui.log" "$WORK/gui-screenshot.log" "${gui_logs[@]}" "$DATA/server.log" "$DATA/logs/server.log"; do
    [ -f "$log_file" ] || continue
    checked=$((checked + 1))
    if [ "$(basename "$log_file")" = "faults.log" ] && [ -s "$log_file" ]; then
        fail "the GUI recorded a fatal fault in $log_file:
$(head -40 "$log_file")"
    fi
    if grep -qE "Traceback \(most recent call last\)|uncaught exception" "$log_file"; then
        fail "$log_file has a traceback:
$(grep -nE -A12 "Traceback \(most recent call last\)|uncaught exception" "$log_file" | head -40)"
    fi
done
echo "ok: $checked log files"

# 6. stop the server ---------------------------------------------------------------------------------
step "stopping the bundle's server (pid $SERVER_PID)"
stop_pid "$SERVER_PID" 20
if alive "$SERVER_PID"; then fail "server pid $SERVER_PID still alive"; fi
[ ! -e "$DATA/server.json" ] || fail "the server did not remove server.json on a clean stop"
SERVER_PID=""

status="ok"
step "PASSED"
