// Package tui is the student's window onto a lab: a Bubble Tea terminal UI
// where traffic fans out from every node to the pods, and every hop
// explains itself.
//
// It is built on package lab's public API alone (Watch, Apply, Scale,
// Traffic, Inject) and the lab/plane and lab/kubectl types; it never
// reaches the data plane.
//
// # The model
//
// [Model] is one root model and an explicit state machine: the lesson
// picker (one line per lesson, kept in view, when a terminal is too short
// for every summary), the lab starting behind a progress indicator, the running lab,
// an error, and closing (the lab is removed, then the program quits).
// Update is the only place state changes. Every lab call — a burst of
// traffic, a fault, an apply, a lesson's check — runs in a tea.Cmd and
// comes back as a message, so the UI never blocks on the lab; a spinner
// shows while one runs. Lab events enter through one re-arming command
// that waits on the Watch channel (and takes what is already queued behind
// the first event, so a burst of flows is one redraw); a watcher that fell
// behind is replaced by a fresh Watch and its snapshot.
//
// # Panes
//
//   - Topology: the client; each node with its IP, link state (▲ up, ▼
//     down), impairment (≈) and the nodePorts its proxy listens on; the
//     pods under their node: ● ready, ○ not ready, ◌ terminating, ✗
//     failed, … pending.
//   - Services: `kubectl get svc` columns, each Service's endpoints under
//     it (○ not ready, ◌ terminating).
//   - Fan-out: for the selected Service and protocol, entry node → pod
//     counts with bars, the refused, dropped, timed-out and failed
//     attempts in columns of their own, and the source address the pods
//     saw. t and T send request by request, so attempts no node saw (to
//     a node whose link is down) are counted too, in that node's row. A
//     narrow pane gets shorter bars, then counts alone, so the failure
//     columns stay in view.
//   - Events: every event of the lab, newest first; a rejection with
//     kubectl's exact error.
//   - Lesson: the step's text, its checks (✓/✗ with expected and
//     observed), hints one at a time.
//
// Enter on an event that is not a flow shows it in full (a rejection's
// error is longer than a line). Enter on a flow explains it hop by hop in kube-proxy's iptables terms,
// with the chain names a real cluster would have, and says where nplab's
// userspace proxy differs.
//
// Every state is told by a symbol as well as a colour, and the focused
// pane has heavy borders, so the screen is complete under NO_COLOR or
// TERM=dumb.
//
// # Lessons
//
// A [Lesson] is what the lesson pane needs; an [Entry] is a picker line
// that starts a lab and its lesson. [FreeLab] and [ManifestEntry] are
// lessons with no steps; package scenarios is adapted to Lesson.
//
// # Running it
//
// [Run] is the whole program: it runs the UI and removes every lab it
// started however the UI ends (q, Ctrl-C, SIGTERM, SIGHUP, a panic in
// Update, View or a command). Bubble Tea restores the terminal; Run then
// cancels the commands, waits for a start in flight and closes every lab.
// Package main's tui.go wires `nplab tui NAME|FILE`, `nplab tui -f ...`
// and plain `nplab` on a terminal to it.
//
// # Keys
//
// t/T traffic to the selected node / every node, p protocol; x delete the
// selected pod, r toggle its readiness, s stop or start its app; d the
// selected node's link down/up, l delay and loss on/off; e flip the
// selected Service's externalTrafficPolicy (an apply of the live spec with
// the field flipped: see policyManifest; the fan-out counts start over),
// +/- scale its Deployment; a apply
// a file; c check the step, h a hint, n/b next/previous step; Enter
// explain a flow; ↑/↓ and Tab move; ? every key; q quit.
//
// # Tests
//
// Update is tested key by key and event kind by event kind on lab.New
// (the control plane alone) and hand-made events; View by golden files at
// 80×24 and 120×40 in the Ascii profile (go test ./tui -update rewrites
// them); Run in Bubble Tea's loop, with signals and panics. The tmux test
// of the real binary lives in package main.
package tui
