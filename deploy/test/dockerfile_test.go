package deploytest

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, …
	args string
}

func parseDockerfile(text string) []instruction {
	var out []instruction
	var cur strings.Builder
	for line := range strings.SplitSeq(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasPrefix(trimmed, "#") {
			continue // a comment inside a continued instruction
		}
		if rest, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// execForm decodes a JSON-array (exec form) argument; it fails on the shell form, which needs a
// shell the final image does not have.
func execForm(t *testing.T, what, args string) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(args), &v); err != nil {
		t.Fatalf("%s is not in exec form (a JSON array): %s", what, args)
	}
	return v
}

// TestDockerfile checks the image's build and final stage against the binary: a static, trimmed
// build with the version in its ldflags; a final stage without a shell that runs as a numeric
// non-root user; every port the binary listens on by default exposed; a health check in exec
// form through a command the binary has; and the entrypoint running the binary.
func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(readFile(t, "Dockerfile"))
	var stages [][]instruction
	for _, in := range ins {
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stages", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	find := func(stage []instruction, cmd string) []instruction {
		var out []instruction
		for _, in := range stage {
			if in.cmd == cmd {
				out = append(out, in)
			}
		}
		return out
	}

	t.Run("builder", func(t *testing.T) {
		if !strings.Contains(build[0].args, "golang:${GO_VERSION}") || !slices.ContainsFunc(ins, func(in instruction) bool {
			return in.cmd == "ARG" && in.args == "GO_VERSION=1.26"
		}) {
			t.Errorf("builder is %q, want golang:1.26 through ARG GO_VERSION", build[0].args)
		}
		var goBuild string
		for _, in := range find(build, "RUN") {
			if strings.Contains(in.args, "go build") {
				goBuild = in.args
			}
		}
		for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=${VERSION}", "-X main.commit=${COMMIT}", "./cmd/gantry"} {
			if !strings.Contains(goBuild, want) {
				t.Errorf("go build step lacks %q: %s", want, goBuild)
			}
		}
		for _, arg := range []string{"VERSION", "COMMIT"} {
			if !slices.ContainsFunc(find(build, "ARG"), func(in instruction) bool { return strings.HasPrefix(in.args, arg+"=") }) {
				t.Errorf("builder has no build arg %s", arg)
			}
		}
	})

	t.Run("final stage", func(t *testing.T) {
		if from := final[0].args; !strings.HasPrefix(from, "gcr.io/distroless/static") || !strings.HasSuffix(from, ":nonroot") {
			t.Errorf("final stage is %q, want distroless static nonroot", from)
		}
		users := find(final, "USER")
		if len(users) != 1 || users[0].args != "65532:65532" {
			t.Errorf("USER %v, want the numeric non-root 65532:65532", users)
		}
		var exposed []string
		for _, in := range find(final, "EXPOSE") {
			exposed = append(exposed, strings.Fields(in.args)...)
		}
		serve, runtime := commandFlags(t, "serve"), commandFlags(t, "runtime")
		for _, d := range []string{serve["listen"], serve["cluster-listen"], runtime["proxy-listen"], runtime["proxy-tls-listen"], runtime["status-listen"]} {
			port := strings.TrimPrefix(d, ":")
			if !slices.Contains(exposed, port) {
				t.Errorf("default listener %s is not exposed (EXPOSE %v)", d, exposed)
			}
		}
		if len(exposed) != 5 {
			t.Errorf("EXPOSE %v, want exactly the five default listeners", exposed)
		}
		vols := find(final, "VOLUME")
		if len(vols) != 1 || !slices.Equal(execForm(t, "VOLUME", vols[0].args), []string{"/var/lib/gantry"}) {
			t.Errorf("VOLUME %v, want [\"/var/lib/gantry\"]", vols)
		}
		env := map[string]string{}
		for _, in := range find(final, "ENV") {
			for f := range strings.FieldsSeq(in.args) {
				k, v, _ := strings.Cut(f, "=")
				env[k] = v
			}
		}
		for _, k := range []string{"GANTRY_DATA_DIR", "GANTRY_CACHE_DIR"} {
			if !strings.HasPrefix(env[k], "/var/lib/gantry/") {
				t.Errorf("ENV %s=%q, want a directory in the volume", k, env[k])
			}
		}
		checkEnv(t, "Dockerfile ENV", "serve", []string{"GANTRY_DATA_DIR"})
		checkEnv(t, "Dockerfile ENV", "runtime", []string{"GANTRY_CACHE_DIR"})

		entry := find(final, "ENTRYPOINT")
		if len(entry) != 1 || !slices.Equal(execForm(t, "ENTRYPOINT", entry[0].args), []string{"/usr/local/bin/gantry"}) {
			t.Errorf("ENTRYPOINT %v, want the binary in exec form", entry)
		}
		if !slices.ContainsFunc(find(final, "COPY"), func(in instruction) bool {
			return strings.Contains(in.args, "--from=build") && strings.HasSuffix(in.args, " /usr/local/bin/gantry")
		}) {
			t.Error("the binary is not copied to /usr/local/bin/gantry")
		}
		cmd := find(final, "CMD")
		if len(cmd) != 1 {
			t.Fatalf("CMD %v", cmd)
		}
		checkArgs(t, "Dockerfile CMD", execForm(t, "CMD", cmd[0].args))

		hc := find(final, "HEALTHCHECK")
		if len(hc) != 1 {
			t.Fatalf("HEALTHCHECK %v", hc)
		}
		_, probe, ok := strings.Cut(hc[0].args, " CMD ")
		if !ok {
			t.Fatalf("HEALTHCHECK without CMD: %s", hc[0].args)
		}
		argv := execForm(t, "HEALTHCHECK CMD", probe)
		if argv[0] != "/usr/local/bin/gantry" {
			t.Errorf("health check runs %s, not the binary", argv[0])
		}
		checkArgs(t, "HEALTHCHECK", argv[1:])
	})

	t.Run("build context", func(t *testing.T) {
		// The builder copies only what .dockerignore lets in.
		allowed := map[string]bool{}
		for line := range strings.SplitSeq(readFile(t, ".dockerignore"), "\n") {
			if p, ok := strings.CutPrefix(strings.TrimSpace(line), "!"); ok {
				allowed[strings.TrimSuffix(p, "/")] = true
			}
		}
		for _, in := range find(build, "COPY") {
			if strings.HasPrefix(in.args, "--from") {
				continue
			}
			f := strings.Fields(in.args)
			for _, src := range f[:len(f)-1] {
				if !allowed[strings.TrimSuffix(src, "/")] {
					t.Errorf("COPY %s: not let in by .dockerignore (allowed %v)", src, allowed)
				}
			}
		}
		// Those paths are enough to build the binary: the main package's imports stay in
		// the module's cmd/ and internal/ (and its dependencies).
		out, err := exec.Command("go", "list", "-C", repoRoot, "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", "./cmd/gantry").Output()
		if err != nil {
			t.Fatal(err)
		}
		for dir := range strings.FieldsSeq(string(out)) {
			rel, ok := strings.CutPrefix(dir, repoRoot+"/")
			if !ok {
				continue // a dependency from the module cache
			}
			top, _, _ := strings.Cut(rel, "/")
			if !allowed[top] {
				t.Errorf("the binary needs %s, which .dockerignore leaves out", rel)
			}
		}
	})
}
