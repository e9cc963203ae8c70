# Sourced by test.sh and the upgrade test: the extension built as an installable package
# for one PostgreSQL major version (the files `cargo pgrx install` would copy, under a
# directory), and installed from it. Needs pgrx-config/pg_configs.sh sourced and PGRX_HOME
# exported (pgrx-config/generate.sh).

pg_config_of() {
    local var=PG_CONFIG_$1
    echo "${!var}"
}

# package_build VERSION OUT_DIR [SOURCE_DIR]: a debug build, as the tests use.
package_build() {
    local version=$1 out source=${3:-.}
    out=$(realpath -m "$2")
    rm -rf "$out"
    (cd "$source" && cargo pgrx package --debug --no-default-features --features "pg$version" \
        -c "$(pg_config_of "$version")" --out-dir "$out")
}

# package_install DIR: copy its files into place. New files replace the old ones rather
# than overwriting them in place, as a package manager does, so that a server still running
# the old library is not disturbed.
package_install() {
    local sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo cp -r --remove-destination "$1/." /
}

# release_package TAG VERSION: the package of a released version (a git tag, or its commit
# when the clone has no tags), built once per commit and PostgreSQL version into
# $CRM_CACHE/releases; prints its directory.
release_package() {
    local tag=$1 version=$2 commit
    commit=$(git rev-parse -q --verify "$tag^{commit}" 2>/dev/null) || commit=$(release_commit "$tag")
    local dir=$CRM_CACHE/releases/crm_access-$commit/pg$version
    if [ ! -f "$dir/.built" ]; then
        local src=target/releases/$commit
        rm -rf "$src" && mkdir -p "$src"
        # -m: the files dated now, not at the commit: the releases share a target directory
        # (below), where cargo names each release's own crates alike (by their path in the
        # workspace) and rebuilds them only when their sources are newer than the last build.
        git archive "$commit" | tar -x -m -C "$src"
        echo "== building $tag ($commit) for PostgreSQL $version (once; cached in $dir)" >&2
        # One target directory for every release: their dependencies (pgrx, its bindings for
        # the version) are mostly the same versions, built once instead of once per release
        # (about a minute each). Builds run one after another, each packaged before the next
        # overwrites the library.
        CARGO_TARGET_DIR=$PWD/target/releases/target package_build "$version" "$dir" "$src" >target/releases/build-$commit-$version.log 2>&1 \
            || { tail -30 target/releases/build-$commit-$version.log >&2; return 1; }
        touch "$dir/.built"
    fi
    echo "$dir"
}

# The commit of each release, for a clone made without tags.
release_commit() {
    case $1 in
        v0.1.0) echo a77a3580d8be74282384e71ffd031b445e0c2607 ;;
        v0.2.0) echo be8dd6ba816bff716685e86de0e69c51c9c2d5ca ;;
        v0.3.0) echo 076e5c32d82542a696322bf61825cd5700c56e1a ;;
        *) echo "packages: unknown release $1" >&2; return 1 ;;
    esac
}
