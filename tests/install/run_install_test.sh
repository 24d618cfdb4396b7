#!/usr/bin/env bash
# Installs an evring build tree into a temporary prefix and checks that a separate project can
# use it.
#
#   run_install_test.sh <build dir> <tests/install dir> find_package|pkg_config [cmake] [c++]
#
# find_package: configures, builds and runs consumer_project/ (find_package(evring REQUIRED),
#               links evring::shm) with -DCMAKE_PREFIX_PATH=<prefix>.
# pkg_config:   builds and runs the same main.cpp with the flags of
#               PKG_CONFIG_PATH=<prefix>/lib/pkgconfig pkg-config --cflags --libs evring.
# Exit 0: passed; 1: failed; 77: skipped because of a known, reported defect ("BUG: ...").
set -euo pipefail

build=${1:?build dir}
here=${2:?tests/install dir}
mode=${3:?find_package or pkg_config}
cmake=${4:-cmake}
cxx=${5:-c++}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/evring-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

fail() { echo "install test ($mode): $*" >&2; exit 1; }
run_logged() {  # run_logged <log> <command...>: output only shown on failure
  local log=$1; shift
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    fail "command failed: $*"
  fi
}

run_logged "$tmp/install.log" "$cmake" --install "$build" --prefix "$prefix"
[ -f "$prefix/include/evring/shm/bus.h" ] || fail "headers not installed under $prefix/include"

case $mode in
  find_package)
    run_logged "$tmp/configure.log" "$cmake" -S "$here/consumer_project" -B "$tmp/build" \
      -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx"
    run_logged "$tmp/build.log" "$cmake" --build "$tmp/build"
    "$tmp/build/evring_install_consumer" || fail "the consumer program failed (exit $?)"
    ;;
  pkg_config)
    command -v pkg-config >/dev/null || fail "pkg-config is not installed"
    pcdir=$prefix/lib/pkgconfig
    [ -f "$pcdir/evring.pc" ] || fail "evring.pc not installed in $pcdir"
    export PKG_CONFIG_PATH=$pcdir
    pkg-config --cflags --libs evring >/dev/null || fail "pkg-config --cflags --libs evring failed"
    cflags=$(pkg-config --cflags evring)
    libs=$(pkg-config --libs evring)
    case " $cflags $libs " in
      *"$prefix"*) ;;
      *)
        echo "BUG: evring.pc installed with 'cmake --install --prefix $prefix' points at" \
             "'$(pkg-config --variable=prefix evring)' (cflags: $cflags): cmake/evring.pc.in bakes" \
             "CMAKE_INSTALL_PREFIX in at configure time; use prefix=\${pcfiledir}/../.." >&2
        exit 1
        ;;
    esac
    # shellcheck disable=SC2086  # flags are word lists
    if ! "$cxx" -std=c++20 -O1 "$here/consumer_project/main.cpp" $cflags $libs \
        -o "$tmp/consumer_pc" >"$tmp/compile.log" 2>&1; then
      # shellcheck disable=SC2086
      if "$cxx" -std=c++20 -O1 "$here/consumer_project/main.cpp" $cflags \
          $(pkg-config --libs --static evring) -o "$tmp/consumer_pc" >/dev/null 2>&1; then
        echo "BUG: 'pkg-config --libs evring' does not link the installed static libraries:" \
             "libxxhash is only in Requires.private (needs --static); list it in Requires" >&2
        exit 1
      fi
      cat "$tmp/compile.log" >&2
      fail "building with pkg-config flags failed"
    fi
    "$tmp/consumer_pc" || fail "the consumer program built with pkg-config flags failed"
    ;;
  *) fail "unknown mode '$mode'" ;;
esac
echo "install test ($mode): ok"
