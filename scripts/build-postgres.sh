#!/usr/bin/env bash
# Builds a PostgreSQL major version from Debian's source package into
# $CRM_CACHE/pgNN (default /var/cache/crm_access/pgNN; shared/TOOLCHAIN.md), once: a second run finds the finished build
# and does nothing. Only bookworm's 15 has binary packages here; 18 comes from sid's source
# package, fetched through a private apt directory so that the system's sources (and libc) are
# never touched. Prints the pg_config path on its last line; exits 3 when the version's source
# cannot be had (17: trixie's files are not served here), so callers can skip it cleanly.
# 15-bookworm is bookworm's own 15 (15.18) from source, the old side of the pg_upgrade test:
# the installed 15 (15.20, from bookworm-security) gives every column a `pg_attver` option
# that 18.6 refuses, so pg_upgrade from it fails for any table.
#   scripts/build-postgres.sh 18
set -euo pipefail
name=${1:?usage: build-postgres.sh VERSION}
version=${name%%-*}
case $name in
    18) suite=sid ;;
    17) suite=trixie ;;
    15-bookworm) suite=bookworm ;;
    *) echo "build-postgres: no source suite known for PostgreSQL $version" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../pgrx-config/pg_configs.sh"
cache=$CRM_CACHE
prefix=$cache/pg$name
if [ -x "$prefix/bin/pg_config" ] && [ -f "$prefix/.built" ]; then
    echo "$prefix/bin/pg_config"
    exit 0
fi
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
if ! mkdir -p "$cache" 2>/dev/null; then
    $SUDO mkdir -p "$cache" && $SUDO chown "$(id -u):$(id -g)" "$cache"
fi
# The postgres OS user runs the server built here, so every directory down to it must be
# readable by others (the reason the cache is not under root's mode-700 home).
chmod 755 "$cache"

# The parser generators: the release tarball does not carry generated parser files.
missing=()
for p in bison flex libreadline-dev zlib1g-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "build-postgres: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

apt=$cache/apt-$suite
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/source"
uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
cat > "$apt/src.sources" <<EOF
Types: deb-src
URIs: $uri
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt" -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache")
echo "build-postgres: fetching the source of postgresql-$version from $suite" >&2
apt-get "${opts[@]}" update -qq >&2 2>/dev/null || true
if ! (cd "$apt/source" && apt-get "${opts[@]}" source --download-only "postgresql-$version" >"$apt/source/fetch.log" 2>&1); then
    echo "build-postgres: the source of PostgreSQL $version cannot be had here; skipping it" >&2
    tail -2 "$apt/source/fetch.log" >&2 || true
    exit 3
fi
tarball=$(ls "$apt/source"/postgresql-"$version"_*.orig.tar.bz2 | head -1)
work=$cache/build-pg$name
rm -rf "$work" && mkdir -p "$work"
tar xjf "$tarball" -C "$work"
cd "$work"/postgresql-*
echo "build-postgres: building PostgreSQL $version into $prefix (about 3 minutes on 2 cores)" >&2
{
    ./configure --prefix="$prefix" --without-icu
    make -j"$(nproc)"
    make install
    make -C contrib install
} > "$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; exit 1; }
touch "$prefix/.built"
rm -rf "$work"
echo "$prefix/bin/pg_config"
