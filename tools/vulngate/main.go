// Command vulngate reads govulncheck's JSON output (-format json) on its
// standard input and decides whether CI fails: it exits 3 when the code calls
// a vulnerable symbol of a module the project chooses (anything but the
// standard library), and 0 otherwise. Called vulnerabilities of the standard
// library are listed as warnings with the Go release that fixes them: they
// are fixed by the machine's Go toolchain, not by a change to go.mod, so they
// are reported on every run without failing it.
//
// Usage: govulncheck -format json ./... | go run ./tools/vulngate
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
)

// finding is the part of govulncheck's "finding" message that matters here.
type finding struct {
	OSV          string  `json:"osv"`
	FixedVersion string  `json:"fixed_version"`
	Trace        []frame `json:"trace"`
}

type frame struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Package  string `json:"package"`
	Function string `json:"function"`
}

type message struct {
	Finding *finding `json:"finding"`
}

// called reports whether f is at symbol level: its trace names a function.
func (f *finding) called() bool {
	return len(f.Trace) > 0 && f.Trace[0].Function != ""
}

func main() {
	os.Exit(run(os.Stdin, os.Stdout))
}

// run returns the exit status: 3 when a module other than the standard
// library has a called vulnerability, 2 when the input cannot be read, else 0.
func run(in io.Reader, out io.Writer) int {
	dec := json.NewDecoder(in)
	std := map[string]string{}  // called stdlib OSV id -> fixed version
	mods := map[string]string{} // called module OSV id -> "module@version (fixed in ...)"
	for {
		var m message
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			_, _ = fmt.Fprintf(out, "vulngate: reading govulncheck's JSON: %v\n", err)
			return 2
		}
		f := m.Finding
		if f == nil || !f.called() {
			continue
		}
		top := f.Trace[0]
		if top.Module == "stdlib" || top.Module == "toolchain" {
			std[f.OSV] = f.FixedVersion
			continue
		}
		mods[f.OSV] = fmt.Sprintf("%s@%s (fixed in %s)", top.Module, top.Version, f.FixedVersion)
	}
	for _, id := range sortedKeys(std) {
		_, _ = fmt.Fprintf(out, "warning: %s in the Go standard library is called; fixed in Go %s: upgrade the Go toolchain\n", id, std[id])
	}
	for _, id := range sortedKeys(mods) {
		_, _ = fmt.Fprintf(out, "error: %s in %s is called: raise the module in go.mod\n", id, mods[id])
	}
	if len(mods) > 0 {
		return 3
	}
	_, _ = fmt.Fprintf(out, "vulngate: no called vulnerability in the module's dependencies (%d in the standard library)\n", len(std))
	return 0
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
