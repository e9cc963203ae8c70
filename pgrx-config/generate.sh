#!/usr/bin/env bash
# Writes $PGRX_HOME/config.toml (PGRX_HOME defaults to target/pgrx-home in the checkout) from
# pgrx-config/pg_configs.sh, listing every version whose pg_config exists. The scripts export
# that PGRX_HOME, so nothing depends on what `cargo pgrx init` left in a home directory.
#   eval "$(pgrx-config/generate.sh)"     # exports PGRX_HOME
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/pg_configs.sh"
home=${PGRX_HOME:-$(dirname "$here")/target/pgrx-home}
mkdir -p "$home"
{
    cat "$here/config.toml.in"
    for v in 13 14 15 16 17 18; do
        var=PG_CONFIG_$v
        path=${!var:-}
        if [ -n "$path" ] && [ -x "$path" ]; then
            echo "pg$v = \"$path\""
        fi
    done
} > "$home/config.toml"
echo "export PGRX_HOME=$home"
