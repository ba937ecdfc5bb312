package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"go.yaml.in/yaml/v3"
)

// Output formats of the -o flag.
const (
	OutputTable = "table"
	OutputJSON  = "json"
	OutputYAML  = "yaml"
)

// CheckOutput returns an error for an -o value that is not table, json or yaml ("" is table).
func CheckOutput(format string) error {
	switch format {
	case "", OutputTable, OutputJSON, OutputYAML:
		return nil
	}
	return fmt.Errorf("-o %q: use table, json or yaml", format)
}

// Table is rows of text under a header, printed aligned.
type Table struct {
	Header []string
	Rows   [][]string
}

// Write prints the table with columns aligned by spaces.
func (t Table) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	if len(t.Header) > 0 {
		_, _ = fmt.Fprintln(tw, strings.Join(t.Header, "\t"))
	}
	for _, r := range t.Rows {
		cells := make([]string, len(r))
		for i, c := range r {
			// A tab or newline inside a cell would break the columns.
			cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(c)
		}
		_, _ = fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush() //nolint:wrapcheck // the writer's error is the caller's to wrap
}

// Print writes v in format: table (table() builds it), json (indented) or yaml (with the JSON
// field names).
func Print(w io.Writer, format string, v any, table func() Table) error {
	switch format {
	case OutputJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v) //nolint:wrapcheck // the writer's error is the caller's to wrap
	case OutputYAML:
		return WriteYAML(w, v)
	case "", OutputTable:
		return table().Write(w)
	}
	return CheckOutput(format)
}

// WriteYAML writes v as block-style YAML whose keys are v's JSON field names, in their JSON
// order.
func WriteYAML(w io.Writer, v any) error {
	j, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	var n yaml.Node
	// JSON is YAML: decoding it into a node keeps the key order.
	if err := yaml.Unmarshal(j, &n); err != nil {
		return fmt.Errorf("encode as YAML: %w", err)
	}
	blockStyle(&n)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return fmt.Errorf("encode as YAML: %w", err)
	}
	return enc.Close() //nolint:wrapcheck // the writer's error is the caller's to wrap
}

// blockStyle drops the flow and quoting styles the JSON input left on every node, so the YAML
// encoder picks its usual ones.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// IsTerminal reports whether f is a character device, such as a terminal.
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// TerminalProgress returns a LineProgress on w, or nil when w is not a terminal (a log file or a
// pipe gets no redrawn lines).
func TerminalProgress(w *os.File, verb string) Progress {
	if !IsTerminal(w) {
		return nil
	}
	return LineProgress(w, verb)
}

// LineProgress returns a Progress that redraws one line on w: a bar, the groups done out of all,
// and the group in transfer; the last call ends the line.
func LineProgress(w io.Writer, verb string) Progress {
	return func(done, total int, group string) {
		const width = 30
		filled := 0
		if total > 0 {
			filled = done * width / total
		}
		bar := strings.Repeat("#", filled) + strings.Repeat(".", width-filled)
		if done >= total {
			_, _ = fmt.Fprintf(w, "\r\033[K%s [%s] %d/%d groups\n", verb, bar, done, total)
			return
		}
		_, _ = fmt.Fprintf(w, "\r\033[K%s [%s] %d/%d groups: %s", verb, bar, done, total, group)
	}
}
