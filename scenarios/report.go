package scenarios

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteText prints a report as `nplab run` does: each step with ✓, ✗ or
// –, and under a failed check what was expected and what was observed,
// then the one-line verdict.
func WriteText(w io.Writer, r *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n", r.Scenario, r.Title)
	for _, st := range r.Steps {
		WriteStep(&b, st)
	}
	fmt.Fprintf(&b, "%s: %s\n", strings.ToUpper(string(r.Status)), r.Reason)
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteStep prints one step's lines.
func WriteStep(w io.Writer, st StepResult) {
	mark := map[Status]string{Pass: "✓", Fail: "✗", Skipped: "–", Unsupported: "–"}[st.Status]
	fmt.Fprintf(w, "%s %d. %s [%s]\n", mark, st.Index, st.Name, st.Action)
	if st.Status == Skipped || st.Status == Unsupported {
		fmt.Fprintf(w, "    %s: %s\n", st.Status, st.Reason)
		return
	}
	if st.Status == Pass && st.Reason != "" {
		fmt.Fprintf(w, "    (%s)\n", st.Reason)
	}
	for _, c := range st.Checks {
		if c.Pass {
			continue
		}
		fmt.Fprintf(w, "    ✗ %s\n", c.Check)
		fmt.Fprintf(w, "      expected: %s\n", indent(c.Expected))
		fmt.Fprintf(w, "      observed: %s\n", indent(c.Observed))
		if c.Hint != "" {
			fmt.Fprintf(w, "      hint: %s\n", indent(c.Hint))
		}
	}
}

func indent(s string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n                ")
}

// WriteJSON prints the report as one JSON object.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// JUnit is the report as a JUnit XML file: one testsuite per scenario,
// one testcase per step, a failure per failed step (its checks'
// expected and observed), skipped for a step not run.
type JUnit struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []JUnitSuite `xml:"testsuite"`
}

// JUnitSuite is one scenario.
type JUnitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []JUnitCase `xml:"testcase"`
}

// JUnitCase is one step.
type JUnitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *JUnitFailure `xml:"failure,omitempty"`
	Skipped   *JUnitSkipped `xml:"skipped,omitempty"`
}

// JUnitFailure is a failed step.
type JUnitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// JUnitSkipped is a step not run.
type JUnitSkipped struct {
	Message string `xml:"message,attr"`
}

// ToJUnit converts a report.
func ToJUnit(r *Report) JUnit {
	s := JUnitSuite{Name: r.Scenario}
	if s.Name == "" {
		s.Name = r.File
	}
	var total time.Duration
	for _, st := range r.Steps {
		c := JUnitCase{Name: fmt.Sprintf("%02d %s", st.Index, st.Name), ClassName: "nplab." + r.Scenario, Time: seconds(st.Took)}
		total += st.Took
		switch st.Status {
		case Fail:
			var b strings.Builder
			for _, ch := range st.Checks {
				if !ch.Pass {
					fmt.Fprintf(&b, "%s\n  expected: %s\n  observed: %s\n", ch.Check, ch.Expected, ch.Observed)
					if ch.Hint != "" {
						fmt.Fprintf(&b, "  hint: %s\n", ch.Hint)
					}
				}
			}
			c.Failure = &JUnitFailure{Message: st.Reason, Type: "check", Text: b.String()}
			s.Failures++
		case Skipped, Unsupported:
			c.Skipped = &JUnitSkipped{Message: st.Reason}
			s.Skipped++
		}
		s.Cases = append(s.Cases, c)
	}
	if len(r.Steps) == 0 && r.Status != Pass {
		// Nothing ran: one case says why.
		name := r.Scenario
		if name == "" {
			name = r.File
		}
		c := JUnitCase{Name: "00 " + name, ClassName: "nplab." + name, Time: "0.000"}
		if r.Status == Unsupported {
			c.Skipped = &JUnitSkipped{Message: r.Reason}
			s.Skipped++
		} else {
			var text strings.Builder
			for _, e := range r.Errors {
				text.WriteString(e.Error() + "\n")
			}
			c.Failure = &JUnitFailure{Message: r.Reason, Type: string(r.Status), Text: text.String()}
			s.Failures++
		}
		s.Cases = append(s.Cases, c)
	}
	s.Tests = len(s.Cases)
	s.Time = seconds(total)
	return JUnit{Name: "nplab " + r.Mode, Tests: s.Tests, Failures: s.Failures, Skipped: s.Skipped, Suites: []JUnitSuite{s}}
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// WriteJUnit writes the report as JUnit XML.
func WriteJUnit(w io.Writer, r *Report) error {
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(ToJUnit(r)); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
