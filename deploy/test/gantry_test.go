package deploytest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoRoot is the repository's root, two levels above this package.
var repoRoot = func() string {
	abs, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return abs
}()

// gantryBin is the gantry binary built from the repository by TestMain; the artefacts are checked
// against its commands and flags.
var gantryBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gantry-deploy-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gantryBin = filepath.Join(dir, "gantry")
	build := exec.Command("go", "build", "-o", gantryBin, "./cmd/gantry")
	build.Dir = repoRoot
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build gantry:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// flagLine matches a flag in cobra's help: "  -h, --help", "      --data-dir string   … (default "x")".
var flagLine = regexp.MustCompile(`^\s+(?:-\w, )?--([a-z0-9-]+)(?:\s+\w+)?\s{2,}(.*)$`)

// commandFlags returns the flags of a gantry command (e.g. "serve", "certificates generate"),
// global ones included, each with its default value as help prints it ("" when none).
func commandFlags(t *testing.T, command string) map[string]string {
	t.Helper()
	args := append(strings.Fields(command), "--help")
	out, err := exec.Command(gantryBin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("gantry %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if !strings.Contains(string(out), "Usage:\n  gantry "+command) {
		t.Fatalf("gantry has no command %q:\n%s", command, out)
	}
	flags := map[string]string{}
	defaultValue := regexp.MustCompile(`\(default "?([^")]*)"?\)$`)
	for line := range strings.SplitSeq(string(out), "\n") {
		m := flagLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		def := ""
		if d := defaultValue.FindStringSubmatch(m[2]); d != nil {
			def = d[1]
		}
		flags[m[1]] = def
	}
	if len(flags) < 3 {
		t.Fatalf("gantry %s --help lists %d flags; the help format changed?\n%s", command, len(flags), out)
	}
	return flags
}

// specialEnv are the variables gantry reads that are not flags.
var specialEnv = map[string]string{"serve": "GANTRY_ADMIN_TOKEN"}

// checkEnv fails for each GANTRY_* name in env that no flag of command reads.
func checkEnv(t *testing.T, where, command string, env []string) {
	t.Helper()
	flags := commandFlags(t, command)
	for _, name := range env {
		if !strings.HasPrefix(name, "GANTRY_") || specialEnv[command] == name {
			continue
		}
		flag := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "GANTRY_")), "_", "-")
		if _, ok := flags[flag]; !ok {
			t.Errorf("%s: %s names no flag of 'gantry %s'", where, name, command)
		}
	}
}

// checkArgs fails when args (a gantry command line without the binary) name an unknown command or
// flag; it returns the command ("serve", "certificates generate").
func checkArgs(t *testing.T, where string, args []string) string {
	t.Helper()
	var words []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			break
		}
		words = append(words, a)
	}
	if len(words) == 0 {
		t.Fatalf("%s: no gantry command in %q", where, args)
	}
	command := strings.Join(words, " ")
	flags := commandFlags(t, command)
	for _, a := range args[len(words):] {
		if !strings.HasPrefix(a, "--") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if _, ok := flags[name]; !ok {
			t.Errorf("%s: 'gantry %s' has no flag --%s", where, command, name)
		}
	}
	return command
}

func readFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
