package apps

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// DefaultInitRun is how long an init container runs when its command says
// nothing nplab understands.
const DefaultInitRun = 2 * time.Second

// maxInitRun caps a `sleep N` so a typo cannot hold a pod for hours.
const maxInitRun = 10 * time.Minute

// InitRun is what nplab makes of an init container. nplab runs no images,
// so it cannot run what an init container does (wait for a Service, copy
// files, run a migration); it emulates the one thing the pod sees of it, a
// run that ends with an exit code, read from the command in the simplest
// shell terms:
//
//   - "sleep N" (argv or inside sh -c) runs N seconds (at most 10 minutes);
//   - "exit N" ends it with code N, "false" with code 1;
//   - anything else runs DefaultInitRun (2 s) and exits 0, and Note says
//     so.
type InitRun struct {
	Duration time.Duration
	Code     int32
	// Message is the termination message of a failed run.
	Message string
	// Note is a notice for the student: what nplab did not run.
	Note string
}

var (
	sleepRE = regexp.MustCompile(`(?:^|[\s;&|(])sleep\s+([0-9]+)(?:s\b|\b)`)
	exitRE  = regexp.MustCompile(`(?:^|[\s;&|(])exit\s+([0-9]+)\b`)
	falseRE = regexp.MustCompile(`(?:^|[\s;&|(])false(?:$|[\s;&|)])`)
)

// InitFromContainer reads an init container's command and args.
func InitFromContainer(c corev1.Container) InitRun {
	argv := append(slices.Clone(c.Command), c.Args...)
	cmd := strings.Join(argv, " ")
	r := InitRun{Duration: DefaultInitRun}
	understood := false
	if m := sleepRE.FindAllStringSubmatch(cmd, -1); m != nil {
		total := 0
		for _, s := range m {
			n, _ := strconv.Atoi(s[1])
			total += n
		}
		r.Duration = min(time.Duration(total)*time.Second, maxInitRun)
		understood = true
	}
	if m := exitRE.FindStringSubmatch(cmd); m != nil {
		n, _ := strconv.Atoi(m[1])
		r.Code = int32(n % 256)
		understood = true
	} else if falseRE.MatchString(cmd) {
		r.Code = 1
		understood = true
	}
	if r.Code != 0 {
		r.Message = fmt.Sprintf("exited with code %d (%s)", r.Code, cmd)
	}
	what := "runs nothing"
	if cmd != "" {
		what = fmt.Sprintf("runs %q", cmd)
	}
	if understood {
		r.Note = fmt.Sprintf("init container %q %s; nplab runs no images and emulates it as a run of %v that exits with code %d", c.Name, what, r.Duration, r.Code)
	} else {
		r.Note = fmt.Sprintf("init container %q %s; nplab runs no images and emulates it as a run of %v that succeeds (exit code 0)", c.Name, what, r.Duration)
	}
	return r
}
