#!/usr/bin/env bash
# RUSTC_WRAPPER for scripts/check-versions.sh: compiles pgrx-pg-sys with `--cfg docsrs`, so
# that it uses the bindings pgrx ships for every PostgreSQL version (src/include/pgNN.rs)
# instead of generating them from that version's headers, which this machine does not have
# for 16 and 17. Every other crate is compiled as usual.
rustc=$1
shift
for arg in "$@"; do
    if [ "$arg" = pgrx_pg_sys ]; then
        exec "$rustc" "$@" --cfg docsrs
    fi
done
exec "$rustc" "$@"
