package synapse

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteText writes the report for a person at a terminal: errors, warnings
// and information with counts and examples, what each table yields, and
// the verdict with its exit code.
func (r *Report) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	ew.printf("Synapse → Gatehouse: %s of the Synapse database (schema version %d) for server name %q\n",
		r.Mode, r.SchemaVersion, r.ServerName)
	sections := []struct {
		sev   Severity
		title string
		mark  string
	}{
		{SeverityError, "Errors — these stop a migration", "✗"},
		{SeverityWarning, "Warnings — read and decide", "!"},
		{SeverityInfo, "What will happen", "·"},
	}
	for _, s := range sections {
		if r.Count(s.sev) == 0 {
			continue
		}
		ew.printf("\n%s\n", s.title)
		for _, f := range r.Findings {
			if f.Severity != s.sev {
				continue
			}
			count := ""
			if f.Count > 0 {
				count = fmt.Sprintf(" (%d)", f.Count)
			}
			ew.printf("  %s %s%s: %s\n", s.mark, f.Code, count, f.Message)
			if len(f.Examples) > 0 {
				ew.printf("      e.g. %s\n", strings.Join(f.Examples, ", "))
			}
		}
	}
	if len(r.Streams) > 0 {
		ew.printf("\nRows read\n")
		tw := tabwriter.NewWriter(ew, 2, 8, 2, ' ', 0)
		fmt.Fprintf(tw, "  table\tread\timported\tskipped\n")
		for _, st := range r.Streams {
			var skipped []string
			for _, reason := range st.Reasons() {
				skipped = append(skipped, fmt.Sprintf("%s %d", reason, st.Skipped[reason].Count))
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\n", st.Stream, st.Read, st.Emitted, strings.Join(skipped, ", "))
		}
		tw.Flush()
	}
	ew.printf("\n%d error(s), %d warning(s) — exit code %d\n", r.Count(SeverityError), r.Count(SeverityWarning), r.ExitCode())
	return ew.err
}

// WriteJSON writes the report as JSON lines, for machines: one
// {"type":"finding",…} per finding, one {"type":"stream",…} per table read,
// and a closing {"type":"summary",…} with the counts and the exit code.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	for _, f := range r.Findings {
		if err := enc.Encode(struct {
			Type string `json:"type"`
			Finding
		}{"finding", f}); err != nil {
			return err
		}
	}
	for _, st := range r.Streams {
		if err := enc.Encode(struct {
			Type string `json:"type"`
			Stats
		}{"stream", st}); err != nil {
			return err
		}
	}
	return enc.Encode(map[string]any{
		"type": "summary", "mode": r.Mode.String(), "server_name": r.ServerName, "schema_version": r.SchemaVersion,
		"errors": r.Count(SeverityError), "warnings": r.Count(SeverityWarning), "info": r.Count(SeverityInfo),
		"exit_code": r.ExitCode(), "elapsed_ms": r.Elapsed.Milliseconds(),
	})
}

// errWriter remembers the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) { fmt.Fprintf(e, format, args...) }
