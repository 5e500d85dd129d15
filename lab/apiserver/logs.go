package apiserver

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
)

// logPoll is how often a followed log (kubectl logs -f) is looked at for
// new lines.
var logPoll = 200 * time.Millisecond

// logs serves GET pods/NAME/log, kubectl logs: the container's lines as
// text, one per line, with PodLogOptions' container, previous,
// timestamps, tailLines, sinceSeconds, sinceTime, limitBytes and follow.
// A follow ends when the client goes, the pod goes, or the container
// starts again (as a real one ends with the container).
func (s *Server) logs(w http.ResponseWriter, r *http.Request, pod string) {
	q := r.URL.Query()
	boolOpt := func(k string) bool { v, _ := strconv.ParseBool(q.Get(k)); return v }
	opts := lab.LogOptions{Container: q.Get("container"), Previous: boolOpt("previous")}
	timestamps, follow := boolOpt("timestamps"), boolOpt("follow") && !opts.Previous
	tail := int64(-1)
	if v := q.Get("tailLines"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeErr(w, apierrors.NewBadRequest(fmt.Sprintf("tailLines: Invalid value: %q: must be greater than or equal to 0", v)))
			return
		}
		tail = n
	}
	var since time.Time
	if v := q.Get("sinceSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			writeErr(w, apierrors.NewBadRequest(fmt.Sprintf("sinceSeconds: Invalid value: %q: must be greater than 0", v)))
			return
		}
		since = time.Now().Add(-time.Duration(n) * time.Second)
	} else if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeErr(w, apierrors.NewBadRequest(fmt.Sprintf("sinceTime: Invalid value: %q: %v", v, err)))
			return
		}
		since = t
	}
	limit := int64(-1)
	if v := q.Get("limitBytes"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			writeErr(w, apierrors.NewBadRequest(fmt.Sprintf("limitBytes: Invalid value: %q: must be greater than 0", v)))
			return
		}
		limit = n
	}
	lines, err := s.lab.Logs(pod, opts)
	if err != nil {
		writeErr(w, err)
		return
	}
	var kept []plane.LogLine
	for _, ln := range lines {
		if since.IsZero() || !ln.Time.Before(since) {
			kept = append(kept, ln)
		}
	}
	if tail >= 0 && int64(len(kept)) > tail {
		kept = kept[int64(len(kept))-tail:]
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	var last uint64
	if n := len(lines); n > 0 {
		last = lines[n-1].Seq
	}
	write := func(lns []plane.LogLine) bool {
		for _, ln := range lns {
			text := ln.Text + "\n"
			if timestamps {
				text = ln.Time.UTC().Format(time.RFC3339Nano) + " " + text
			}
			if limit >= 0 && int64(len(text)) > limit {
				text = text[:limit]
			}
			if _, err := w.Write([]byte(text)); err != nil {
				return false
			}
			if limit >= 0 {
				if limit -= int64(len(text)); limit == 0 {
					return false
				}
			}
		}
		if fl != nil {
			fl.Flush()
		}
		return true
	}
	if !write(kept) || !follow {
		return
	}
	t := time.NewTicker(logPoll)
	defer t.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
		lines, err := s.lab.Logs(pod, opts)
		if err != nil {
			return // the pod is gone
		}
		var fresh []plane.LogLine
		for _, ln := range lines {
			if ln.Seq > last {
				fresh = append(fresh, ln)
			}
		}
		if n := len(lines); n > 0 && lines[n-1].Seq < last {
			return // a new start of the container: this one's log ended
		}
		if len(fresh) > 0 {
			last = fresh[len(fresh)-1].Seq
			if !write(fresh) {
				return
			}
		}
	}
}
