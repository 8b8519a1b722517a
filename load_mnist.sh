#!/usr/bin/env bash
# Download the MNIST database into a folder, checksummed.
#
#   ./load_mnist.sh [DEST [FILE ...]]
#
# DEST defaults to $DIGITGENERATOR_MNIST_DATA, else mnist_data. FILEs default to all
# four files below. Each file is fetched from the first mirror that gives the
# right SHA-256, into a temporary file renamed into place only once verified; a
# file already there with the right checksum is left alone. MNIST_MIRRORS
# (space-separated base URLs) overrides the mirrors, e.g. for a local copy.
# A mirror that does not connect within MNIST_TIMEOUT seconds (default 10), or
# sends nothing for that long, is given up for the next. Partial downloads are
# hidden `.NAME.partial-PID` files: removed on exit, and by the next run when a
# kill -9 left one behind.
set -euo pipefail

die() { echo "load_mnist.sh: $*" >&2; exit 1; }

# Mirrors and checksums: the table digitgenerator-download reads too.
TABLE="$(cd "$(dirname "$0")" && pwd)/digitgenerator/mnist_resources.txt"
[ -r "$TABLE" ] || die "cannot read $TABLE (run this script from a digitgenerator checkout)"
FILES=$(awk '$1 !~ /^#/ && $1 != "mirror" && NF == 2' "$TABLE")
MIRRORS=${MNIST_MIRRORS:-$(awk '$1 == "mirror" {printf "%s ", $2}' "$TABLE")}

sha256() {
    if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1
    else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

TIMEOUT=${MNIST_TIMEOUT:-10}
[[ "$TIMEOUT" =~ ^[1-9][0-9]{0,3}$ ]] || die "MNIST_TIMEOUT must be a whole number of seconds, 1-9999, got '$TIMEOUT'"

child=""
fetch() {  # fetch URL OUTFILE, in the background so that a signal is handled at once
    if command -v curl >/dev/null; then
        # --speed-limit 1 --speed-time T: give up when no byte arrives for T seconds (a stalled server)
        curl --fail --silent --show-error --location --connect-timeout "$TIMEOUT" \
             --speed-limit 1 --speed-time "$TIMEOUT" --max-time 600 -o "$2" "$1" &
    elif command -v wget >/dev/null; then
        wget --quiet --timeout="$TIMEOUT" --tries=1 -O "$2" "$1" &
    else
        die "needs curl or wget"
    fi
    child=$!
    local status=0
    wait "$child" || status=$?
    child=""
    return "$status"
}

dest=${1:-${DIGITGENERATOR_MNIST_DATA:-mnist_data}}
[ $# -gt 0 ] && shift
wanted="$*"
for name in $wanted; do
    grep -q "^$name " <<< "$FILES" || die "unknown file $name (known: $(awk 'NF{printf "%s ", $1}' <<< "$FILES"))"
done

mkdir -p "$dest" || die "cannot create folder $dest"

# Partial downloads of runs that were killed outright (their pid is gone).
for stale in "$dest"/.*.partial-*; do
    [ -e "$stale" ] || continue
    pid=${stale##*.partial-}
    if [[ "$pid" =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null; then rm -f "$stale"; fi
done

tmp=""
cleanup() { [ -n "$child" ] && kill "$child" 2>/dev/null; [ -n "$tmp" ] && rm -f "$tmp"; return 0; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

failed=0
while read -r name digest; do
    [ -n "$name" ] || continue
    if [ -n "$wanted" ] && [[ " $wanted " != *" $name "* ]]; then continue; fi
    target="$dest/$name"
    if [ -f "$target" ] && [ "$(sha256 "$target")" = "$digest" ]; then
        echo "$name: already there, checksum ok"
        continue
    fi
    ok=0
    for base in $MIRRORS; do
        tmp="$dest/.$name.partial-$$"
        : > "$tmp"
        if ! fetch "${base%/}/$name" "$tmp" 2>/dev/null; then
            echo "$name: ${base%/}/ did not answer or refused" >&2
        elif [ "$(sha256 "$tmp")" != "$digest" ]; then
            echo "$name: ${base%/}/ sent a file with the wrong checksum" >&2
        else
            mv -f "$tmp" "$target"
            tmp=""
            echo "$name: downloaded from ${base%/}/, checksum ok"
            ok=1
            break
        fi
        rm -f "$tmp"
        tmp=""
    done
    if [ "$ok" = 0 ]; then
        echo "$name: no mirror gave a good copy (no network?)" >&2
        failed=1
    fi
done <<< "$FILES"

if [ "$failed" = 1 ]; then
    die "some files could not be downloaded; digitgenerator keeps using its embedded 5,000-digit sample"
fi
echo "MNIST is in $dest/"
