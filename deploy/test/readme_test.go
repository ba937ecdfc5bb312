package deploytest

import (
	"strings"
	"testing"
)

// shellLines returns the commands of a Markdown text's sh code blocks, continuation lines joined
// and comments dropped.
func shellLines(markdown string) []string {
	var out []string
	in := false
	var cur strings.Builder
	for line := range strings.SplitSeq(markdown, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "```"):
			in = trimmed == "```sh"
			continue
		case !in:
			continue
		}
		if i := strings.Index(trimmed, " #"); i >= 0 {
			trimmed = strings.TrimSpace(trimmed[:i])
		}
		if rest, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(trimmed)
		if s := strings.TrimSpace(cur.String()); s != "" && !strings.HasPrefix(s, "#") {
			out = append(out, s)
		}
		cur.Reset()
	}
	return out
}

// TestReadmeCommands checks that every gantry command line in deploy/README.md and in the README's
// Deploying section (run directly, with sudo, or as the image's arguments) names a command and
// flags the binary has.
func TestReadmeCommands(t *testing.T) {
	readme := readFile(t, "README.md")
	start := strings.Index(readme, "## Deploying")
	if start < 0 {
		t.Fatal("README has no Deploying section")
	}
	section := readme[start:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	checked := 0
	for _, doc := range []struct{ name, text string }{{"deploy/README.md", readFile(t, "deploy/README.md")}, {"README.md", section}} {
		for _, line := range shellLines(doc.text) {
			f := strings.Fields(line)
			for i, tok := range f {
				invoked := (tok == "gantry" && (i == 0 || f[i-1] == "sudo")) ||
					(strings.HasPrefix(tok, "gantry:") && i > 0 && f[i-1] != "-t" && i+1 < len(f) && !strings.HasPrefix(f[i+1], "-"))
				if !invoked || i+1 >= len(f) {
					continue
				}
				var args []string
				for _, a := range f[i+1:] {
					args = append(args, strings.Trim(a, `"'`))
				}
				checkArgs(t, doc.name+": "+line, args)
				checked++
			}
		}
	}
	// The certificate and runtime commands at least; a parsing change that finds none fails.
	if checked < 5 {
		t.Errorf("checked %d gantry command lines; the READMEs have more", checked)
	}
}
