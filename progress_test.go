package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// TestProgress: on a terminal the status is drawn in place and cleared at
// the end, leaving nothing; on a pipe only the milestone line is printed.
func TestProgress(t *testing.T) {
	var tty bytes.Buffer
	p := &progress{out: &tty, tty: true}
	end := p.phase("Pods ready: 0/3")
	p.update("Pods ready: 2/3")
	end(true, "Pods ready: 3/3")
	got := tty.String()
	if !strings.HasPrefix(got, "\r\x1b[KPods ready: 0/3... ") || !strings.Contains(got, "\r\x1b[KPods ready: 2/3... ") ||
		!strings.HasSuffix(got, "\r\x1b[K") || strings.Contains(got, "3/3") {
		t.Errorf("on a terminal, progress wrote %q; want the status drawn and redrawn in place, then cleared", got)
	}

	var pipe bytes.Buffer
	p = &progress{out: &pipe}
	end = p.phase("Pods ready: 0/3")
	p.update("Pods ready: 2/3")
	end(true, "Pods ready: 3/3")
	end = p.phase("Other")
	end(false, "Other done")
	if !regexp.MustCompile(`^Pods ready: 3/3 \(\d+\.\ds\)\n$`).MatchString(pipe.String()) {
		t.Errorf("on a pipe, progress wrote %q; want one milestone line", pipe.String())
	}
}
