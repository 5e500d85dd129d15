// Package scenarios is labs as data: a scenario is one YAML file that sets
// up a lab, applies manifests, makes traffic and faults happen, gives the
// student tasks, and checks what should be observed. docs/scenarios.md is
// the format's reference; scenarios/builtin holds the ten built-in lessons,
// embedded in the binary ([Lessons], [Builtin], [BuiltinSource], [List]).
//
// # Decoding
//
// [Parse], [Load], [LoadFS] and [Open] decode a file strictly, by walking
// yaml.v3's node tree: an unknown or duplicate key, an alias, a value of
// the wrong type, and every semantic mistake (two actions in one step, an
// unknown node, a check with nothing to check, a manifest file that does
// not exist) is an [*Error] naming the file, the line and the key path
// ("steps[2].traffic.count"); all of them come back together as [Errors].
// Every manifest a scenario names is read then, so running reads no file.
//
// # Running
//
// [Run] runs a scenario headless and returns a [Report]; [NewSession] runs
// it one step at a time ([Session.Next]), which is what a terminal UI
// drives, and for a task re-checks it on demand ([Session.Recheck]) or on
// every change of the lab ([Session.Await]) and gives its hints one at a
// time ([Session.Hint]).
//
// The runner uses only package lab's public API. A scenario with a step
// that needs the data plane (traffic, faults on running pods and links)
// runs on lab.Start: network namespaces, so root and Linux, and a program
// that imports lab/dataplane (the nplab command does). Others run on
// lab.New, the control plane alone, anywhere. [Options].ControlPlaneOnly
// runs any scenario on lab.New, skipping what needs the data plane.
//
// Each step does its action (lab.Lab.ApplyFiles, Delete, DeleteFile,
// Inject, a wait that folds lab.Watch events into a lab.State until its
// checks hold), waits until the data plane has caught up, sends its
// traffic with lab.Lab.Send — one reply per request, each with its
// plane.Flow: entry node, chosen pod, result, the source address the pod
// saw — and runs its checks on those typed observations and on
// lab.Lab.State, never on printed text. A failed [CheckResult] says what
// was expected and what was observed in a student's words, with the step's
// hint.
//
// A step needing what the machine lacks ([Probe]: root for the data plane,
// the kernel's sctp module, the sch_netem qdisc) is reported
// [Unsupported], naming the module, and the run goes on; the report's
// [Report.ExitCode] is 0 (pass), 1 (a check failed) or 3 (this machine
// cannot run it). [WriteText], [WriteJSON] and [WriteJUnit] print a report
// as `nplab run` does.
//
// # Grading
//
// With [Options].Check, each task applies the student's files
// ([Options].Student) instead of its solution: a file goes to the first
// task whose Supplies names one of its objects (a file that names none,
// or does not parse, to the first task), so a file kubectl cannot parse
// is a failed check with kubectl's parse error as what was observed.
package scenarios
