# scripts/release.sh — how the installed binaries are built; sourced by scripts/install and
# bench/lib.sh, never run. Defines:
#   release_target           the host's target triple (rustc -vV)
#   release_static_reason    empty when the binaries can be linked statically here, else why not
#   release_rustflags        RUSTFLAGS for the build ($RUSTFLAGS plus +crt-static when static)
#   release_dir ROOT         where `cargo build --release` of the workspace at ROOT puts them
#
# Why static: every process a launch starts pays glibc's dynamic loader (mapping libc, libm
# and libgcc_s, binding their symbols) before main. Linked statically, `cell --version`
# takes 0.65 ms of CPU instead of 1.35 ms on the benchmark machine, and a launch runs two of
# our processes (the launcher and cell-init), so a launch is ~0.8 ms faster (bench/README.md).
# A static cell-init also runs in any cell view, whatever libc the cell's /usr has.
#
# The target is named explicitly because crt-static would otherwise also apply to the
# proc-macro crates cargo builds for the host, which cannot be static; with --target, RUSTFLAGS
# reaches only the target's artifacts (so they land in target/<triple>/release).
#
# glibc's static user lookups (getpwuid for the launcher's account) read /etc/passwd and ask
# nscd; other NSS modules (LDAP, sssd) are loaded from the host's glibc, which works where it is
# the glibc the binary was built against (scripts/install builds on the host). Set
# CELL_DYNAMIC=1 for the dynamically linked build.

release_target=$( (rustc -vV 2>/dev/null || true) | sed -n "s/^host: //p")

release_static_reason=""
if [ "${CELL_DYNAMIC:-0}" = 1 ]; then
	release_static_reason="CELL_DYNAMIC=1"
elif [ -z "$release_target" ]; then
	release_static_reason="rustc -vV names no host target"
else
	case "$release_target" in
	*-linux-gnu*)
		# glibc's static archive (Debian: libc6-dev; Fedora: glibc-static).
		libc_a=$(${CC:-cc} -print-file-name=libc.a 2>/dev/null || true)
		case "$libc_a" in
		/*) [ -f "$libc_a" ] || release_static_reason="no static glibc ($libc_a)" ;;
		*) release_static_reason="no static glibc (libc.a: install libc6-dev or glibc-static)" ;;
		esac
		unset libc_a
		;;
	*-linux-musl*) ;; # static by default
	*) release_static_reason="target $release_target is not linux-gnu or linux-musl" ;;
	esac
fi

release_rustflags=${RUSTFLAGS:-}
[ -n "$release_static_reason" ] || release_rustflags="${release_rustflags:+$release_rustflags }-C target-feature=+crt-static"

release_dir() { # release_dir ROOT: the workspace ROOT's release binaries
	echo "$1/target/$release_target/release"
}
