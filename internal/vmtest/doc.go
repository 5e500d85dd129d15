// Package vmtest runs nplab's tests as root inside a qemu virtual machine that
// boots a stock Debian kernel, so the code that needs kernel features this
// machine lacks (SCTP, the netem qdisc) is tested for real instead of skipped.
//
// # Why a VM
//
// nplab's network is made of real namespaces, veth pairs and sockets, so its
// tests are only as good as the kernel they run on. A CI host or a laptop
// kernel may be built without SCTP or netem; Debian's own kernel has both as
// modules. Rather than installing that kernel, vmtest unpacks it and boots it
// under qemu's software emulation (no KVM needed), with a tiny initramfs for a
// root file system. A boot takes a few seconds.
//
// # The steps (each is an exported function, so they can be used alone)
//
//  1. FetchKernel resolves the one exact kernel package Debian's
//     linux-image-amd64 points at, downloads it with apt and unpacks it with
//     dpkg-deb into a cache directory ($NPLAB_VM_CACHE, by default
//     nplab/vmtest under the user's cache directory, e.g.
//     ~/.cache/nplab/vmtest; see CacheDir). Later runs reuse the cache.
//     Equivalent to:
//
//     PKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
//     apt-get download "$PKG" && dpkg-deb -x "$PKG"_*.deb kernel/
//
//  2. ListTestPackages and BuildTestBinaries compile every package of the
//     module that has tests into a static test binary (CGO_ENABLED=0 go test
//     -c), so it runs in the VM without a C library.
//
//  3. Initramfs.Write packs a gzip-compressed newc cpio archive (the format
//     the kernel unpacks into its first root file system) with busybox, the
//     kernel modules (ModuleLoadOrder: dependencies read from each module's
//     .modinfo, in load order, since there is no modprobe inside), iproute2's
//     ip and tc with their shared libraries (busybox's ip has no netns), the
//     module's source tree (tests run in their package directory, as with go
//     test, so testdata files are found), the test binaries and an init
//     script.
//
//  4. Boot starts qemu-system-x86_64 with that kernel and initramfs. The init
//     script loads the modules, runs each binary with -test.v as root with
//     NPLAB_REQUIRE=root,sctp,netem (see package internal/testenv: a test
//     that would skip for lack of SCTP or netem fails instead), prints one
//     marker line per package and a final one, and makes qemu exit through
//     the isa-debug-exit device with the overall status.
//
//  5. ParseConsole (called by Boot) reads the serial console and turns the marker lines into a
//     Report: which packages passed, which failed, whether the run finished.
//
// Run does steps 1, 3 and 4 for binaries built in step 2.
//
// The marker lines look like this (anywhere in a console line, since the
// kernel may prefix the first line with escape codes; lines end in \r\n):
//
//	NPLAB-VMTEST github.com/nplab/nplab/netsim PASS
//	NPLAB-VMTEST github.com/nplab/nplab/nodes FAIL
//	NPLAB-VMTEST-DONE FAIL
//
// # Running it
//
//	NPLAB_VM=1 go test ./internal/vmtest -run TestVM -v
//
// The VM tests run only when asked, with NPLAB_VM=1 (as .ci/run does), and
// then a missing tool is a failure; a plain go test ./... skips them and
// says how to run them. It needs
// Debian's apt (apt-cache, apt-get download, dpkg-deb), busybox-static and
// qemu-system-x86; it does not need root on the host. The VM's console is
// printed to the test log, so the -test.v lines of the tests inside show up
// there by name. TestVMHarnessCatchesFailure boots a VM with one passing and
// one deliberately failing package (internal/vmtest/testdata/selftest) and
// checks the harness tells them apart; its passing package opens an SCTP
// association, adds a netem qdisc and uses `ip netns`, which proves the VM
// kernel and userland have what nplab's tests need.
//
// Environment: NPLAB_VM_PKGS (package patterns for TestVM instead of ./...,
// e.g. "./netsim ./nodes"), NPLAB_VM_CACHE (kernel cache directory), NPLAB_VM_TIMEOUT (a
// Go duration for one boot, default 10m), NPLAB_VM_KEEP=1 (keep the work
// directory with the binaries and the initramfs, and print its path).
package vmtest
