#!/usr/bin/env bash
# Desktop integration for the Training Studio bundle, for the current user only (no root needed).
#
# Installs a launcher (training-studio.desktop) under $XDG_DATA_HOME/applications (default
# ~/.local/share/applications) whose Exec= is the bundle's absolute path, and the app icon into the
# hicolor theme there (PNG at 16..512 px plus the scalable SVG). Running it again rewrites the same
# files (idempotent); --uninstall removes exactly those files and nothing else.
#
#   packaging/install-desktop.sh [PATH/TO/training-studio]     # default: dist/training-studio/training-studio
#   packaging/install-desktop.sh --uninstall
set -euo pipefail

APP_ID="training-studio"
ICON_SIZES=(16 24 32 48 64 128 256 512)
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$SCRIPT_DIR")"
DATA_HOME="${XDG_DATA_HOME:-$HOME/.local/share}"
APPS_DIR="$DATA_HOME/applications"
HICOLOR_DIR="$DATA_HOME/icons/hicolor"
DESKTOP_FILE="$APPS_DIR/$APP_ID.desktop"

die() { echo "install-desktop: error: $*" >&2; exit 1; }
note() { echo "install-desktop: $*"; }

usage() {
    sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

refresh_caches() {
    # Menus and icon themes notice new files by themselves on most desktops; these caches are only
    # refreshed when the tools exist, and a failure there must not fail the install.
    if command -v update-desktop-database >/dev/null 2>&1; then
        update-desktop-database -q "$APPS_DIR" 2>/dev/null || true
    fi
    if command -v gtk-update-icon-cache >/dev/null 2>&1 && [ -f "$HICOLOR_DIR/index.theme" ]; then
        gtk-update-icon-cache -q -t -f "$HICOLOR_DIR" 2>/dev/null || true
    fi
    touch "$HICOLOR_DIR" 2>/dev/null || true
}

uninstall() {
    local removed=0 path
    for path in "$DESKTOP_FILE" "$HICOLOR_DIR/scalable/apps/$APP_ID.svg"; do
        if [ -e "$path" ]; then rm -f -- "$path"; removed=$((removed + 1)); fi
    done
    for size in "${ICON_SIZES[@]}"; do
        path="$HICOLOR_DIR/${size}x${size}/apps/$APP_ID.png"
        if [ -e "$path" ]; then rm -f -- "$path"; removed=$((removed + 1)); fi
    done
    if [ -d "$APPS_DIR" ] && [ -d "$HICOLOR_DIR" ]; then
        refresh_caches
    fi
    note "removed $removed file(s)"
}

# Exec= values follow the Desktop Entry spec: a path with anything but plain characters is put in
# double quotes with ", `, $ and \ backslash-escaped, then every \ is doubled again because the
# whole value is itself a string with escapes; % is doubled since it introduces field codes.
exec_value() {
    local path="$1"
    if [[ "$path" =~ ^[A-Za-z0-9/._+-]+$ ]]; then
        printf '%s' "$path"
        return
    fi
    local quoted="${path//\\/\\\\}"
    quoted="${quoted//\"/\\\"}"
    quoted="${quoted//\`/\\\`}"
    quoted="${quoted//\$/\\\$}"
    quoted="${quoted//\\/\\\\}"
    quoted="${quoted//%/%%}"
    printf '"%s"' "$quoted"
}

# TryExec= is a plain string value: only backslashes need escaping.
string_value() {
    printf '%s' "${1//\\/\\\\}"
}

install_files() {
    local target="$1"
    case "$target" in
        /*) ;;
        *) target="$(pwd)/$target" ;;
    esac
    [ -e "$target" ] || die "no bundle executable at $target (build it first: see packaging/README.md, or pass its path)"
    [ -f "$target" ] && [ -x "$target" ] || die "$target is not an executable file"
    # Resolve symlinks and ..: the launcher must keep working whatever the current directory is.
    target="$(cd "$(dirname "$target")" && pwd -P)/$(basename "$target")"
    case "$target" in
        *$'\n'*|*$'\r'*) die "the bundle path contains a line break; move the bundle elsewhere" ;;
    esac

    # Icons and the launcher template come from the bundle itself when possible, so they match the
    # installed build; otherwise from this checkout.
    local resources=""
    local candidate
    for candidate in "$(dirname "$target")/_internal/training_studio/resources" \
                     "$REPO_DIR/src/training_studio/resources"; do
        if [ -f "$candidate/$APP_ID.desktop" ] && [ -f "$candidate/app/$APP_ID.svg" ]; then
            resources="$candidate"
            break
        fi
    done
    [ -n "$resources" ] || die "cannot find the app icon and $APP_ID.desktop (looked in the bundle and in $REPO_DIR/src)"
    for size in "${ICON_SIZES[@]}"; do
        [ -f "$resources/app/$APP_ID-$size.png" ] || die "missing icon $resources/app/$APP_ID-$size.png"
    done

    mkdir -p "$APPS_DIR" "$HICOLOR_DIR/scalable/apps"
    # Staged outside applications/ (menus watch it) but on the same file system, so the final mv is
    # an atomic rename; the validator wants the real file name.
    local staging_dir staging
    staging_dir="$(mktemp -d "$DATA_HOME/.$APP_ID-install.XXXXXX")"
    # shellcheck disable=SC2064  # expand now: the trap must remove this very directory
    trap "rm -rf -- '$staging_dir'" EXIT
    staging="$staging_dir/$APP_ID.desktop"

    local exec_line tryexec_line line
    # %F: the files and folders chosen with "Open with Training Studio" (they open the import window).
    exec_line="Exec=$(exec_value "$target") %F"
    tryexec_line="TryExec=$(string_value "$target")"
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in
            Exec=*) printf '%s\n' "$exec_line" ;;
            TryExec=*) printf '%s\n' "$tryexec_line" ;;
            "# packaging/install-desktop.sh rewrites"*|"# it works when"*) ;;  # template notes
            *) printf '%s\n' "$line" ;;
        esac
    done < "$resources/$APP_ID.desktop" > "$staging"
    chmod 644 "$staging"

    if command -v desktop-file-validate >/dev/null 2>&1; then
        local problems
        if ! problems="$(desktop-file-validate "$staging" 2>&1)"; then
            die "the generated launcher does not validate, nothing installed:
$problems"
        fi
        [ -z "$problems" ] || note "desktop-file-validate: $problems"
    else
        note "desktop-file-validate not found (apt package desktop-file-utils): launcher not validated"
    fi

    for size in "${ICON_SIZES[@]}"; do
        install -D -m 644 "$resources/app/$APP_ID-$size.png" "$HICOLOR_DIR/${size}x${size}/apps/$APP_ID.png"
    done
    install -m 644 "$resources/app/$APP_ID.svg" "$HICOLOR_DIR/scalable/apps/$APP_ID.svg"
    # Rename last: a menu never sees a launcher whose icon is not there yet, nor a half-written file.
    mv -f -- "$staging" "$DESKTOP_FILE"
    rm -rf -- "$staging_dir"
    trap - EXIT
    refresh_caches
    note "installed $DESKTOP_FILE -> $target"
}

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    --uninstall)
        [ $# -eq 1 ] || die "--uninstall takes no other argument"
        uninstall ;;
    -*) die "unknown option $1 (try --help)" ;;
    *)
        [ $# -le 1 ] || die "expected at most one argument, the path of the bundle's training-studio executable"
        install_files "${1:-$REPO_DIR/dist/$APP_ID/$APP_ID}" ;;
esac
