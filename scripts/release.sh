# scripts/release.sh — how the installed binaries are built; sourced by scripts/install and
# bench/lib.sh, never run. Defines:
#   release_target           the host's target triple (rustc -vV): cell-egress, cell-walflush, cell-mcp
#   release_cell_target      the target of the `cell` crate (the launcher and cell-init): musl where
#                            Rust's musl standard library is installed, else release_target
#   release_cell_reason      empty when release_cell_target is musl, else why not
#   release_static_reason    empty when the binaries can be linked statically here, else why not
#   release_rustflags        RUSTFLAGS for the build ($RUSTFLAGS plus +crt-static when static)
#   release_build ROOT CARGO [ARGS]   builds the workspace at ROOT as scripts/install does
#   release_dir ROOT         the directory release_build fills with every binary, side by side
#
# Why static: every process a launch starts pays glibc's dynamic loader (mapping libc, libm
# and libgcc_s, binding their symbols) before main. Linked statically, `cell --version`
# takes 0.65 ms of CPU instead of 1.35 ms on the benchmark machine, and a launch runs two of
# our processes (the launcher and cell-init), so a launch is ~0.8 ms faster (bench/README.md).
# A static cell-init also runs in any cell view, whatever libc the cell's /usr has.
#
# Why musl for the launcher and cell-init: even static, glibc's start-up asks the processor
# for its cache sizes and features (dozens of `cpuid`, each a trap to the hypervisor in a
# virtual machine) and applies its IFUNC relocations: an empty program takes 0.77 ms to run
# here linked against static glibc and 0.37 ms against musl. A launch starts both programs,
# and nothing in them needs glibc: the launcher uses the `dlmalloc` allocator on musl (musl's
# own is slower for its many small allocations: 0.5 ms more per launch), cell-init musl's.
# Interleaved on the benchmark machine (300 launches each): 0.5 ms less per launch for a musl
# cell-init, and 0.5 ms less again for a musl launcher with dlmalloc (with musl's allocator it
# was 0.5 ms slower than on glibc). The other binaries are long-running (the egress
# proxy resolves names through the host's NSS) and stay on the host's C library.
#
# The target is named explicitly because crt-static would otherwise also apply to the
# proc-macro crates cargo builds for the host, which cannot be static; with --target, RUSTFLAGS
# reaches only the target's artifacts (so they land in target/<triple>/release).
#
# User lookups (getpwuid for the launcher's account, getpwnam for a root launcher's runAs)
# read /etc/passwd and ask nscd, with static glibc as with musl; other NSS modules (LDAP,
# sssd) answer through nscd, which NixOS runs by default. Set CELL_DYNAMIC=1 for the
# dynamically linked glibc build of everything.

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

release_cell_target=$release_target
release_cell_reason=""
case "$release_target" in
*-linux-musl*) ;; # the host target is musl already
*-linux-gnu*)
	if [ -n "$release_static_reason" ]; then
		release_cell_reason="$release_static_reason"
	else
		release_musl=${release_target%%-linux-gnu*}-linux-musl
		release_libdir=$(rustc --print target-libdir --target "$release_musl" 2>/dev/null || true)
		if compgen -G "$release_libdir/libstd-*.rlib" >/dev/null; then
			release_cell_target=$release_musl
		else
			release_cell_reason="Rust's standard library for $release_musl is not installed (rustup target add $release_musl)"
		fi
		unset release_musl release_libdir
	fi
	;;
*) release_cell_reason="target $release_target is not linux-gnu" ;;
esac

release_dir() { # release_dir ROOT: where release_build puts every binary of the workspace ROOT
	echo "$1/target/release-$release_target"
}

release_build() { # release_build ROOT CARGO [CARGO ARGS...]: as scripts/install builds them
	local root=$1 cargo=$2 out b
	shift 2
	out=$(release_dir "$root")
	(cd "$root" && RUSTFLAGS="$release_rustflags" "$cargo" build --release "$@" --target "$release_target") || return
	if [ "$release_cell_target" != "$release_target" ]; then
		(cd "$root" && RUSTFLAGS="$release_rustflags" "$cargo" build --release "$@" -p cell --target "$release_cell_target") || return
	fi
	mkdir -p "$out"
	for b in cell-egress cell-walflush cell-mcp; do
		cp -f "$root/target/$release_target/release/$b" "$out/$b" || return
	done
	for b in cell cell-init; do
		cp -f "$root/target/$release_cell_target/release/$b" "$out/$b" || return
	done
}
