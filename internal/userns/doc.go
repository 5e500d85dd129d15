// Package userns runs nplab without root on Linux, the way rootless
// container runtimes do: nplab re-executes itself (/proc/self/exe) in a new
// user namespace that maps the user to root, with its own mount namespace
// (a private tmpfs on /run for the named network namespaces and nplab's
// state) and its own network namespace, and builds its lab there exactly as
// it does as root. The kernel frees everything when that process ends.
//
// Equivalent to: unshare --user --map-root-user --mount --net sh -c \
// 'mount --make-rprivate / && mount -t tmpfs tmpfs /run && ip link set lo up && nplab ...'
//
// Why a network namespace of its own: a process in a user namespace may
// enter a network namespace only if it is privileged over the user
// namespace owning it, and it has no privilege over the host's. Every
// namespace switch nplab makes (into a node, then back) must therefore
// start from a network namespace the lab's user namespace owns. What must
// stay reachable from the user's own shell — the lab's Kubernetes API on
// 127.0.0.1 — is served on listeners the outer process opens in the host's
// network namespace and hands in (ListenHost). The user's records
// (kubeconfig, the running lab's record) live in RunDir, a directory of the
// user's ($XDG_RUNTIME_DIR/nplab), bound back into the private /run.
//
// Preconditions: Linux with unprivileged user namespaces enabled
// (user.max_user_namespaces > 0, kernel.unprivileged_userns_clone = 1 where
// that sysctl exists, no AppArmor restriction); where they are not, Run
// returns a *DisabledError naming the setting. Nothing here needs newuidmap:
// the single mapping (the user's uid and gid to 0) is one an unprivileged
// process may write itself (with setgroups denied).
package userns
