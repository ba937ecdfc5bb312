package deploytest

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeFile holds the parts of the Compose specification that deploy/docker-compose.yml uses;
// decoding it with unknown fields refused catches a misspelt or misplaced key.
type composeFile struct {
	Services   map[string]composeService `yaml:"services"`
	Volumes    map[string]any            `yaml:"volumes"`
	Extensions map[string]any            `yaml:",inline"` // x-… anchors only
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context string            `yaml:"context"`
		Args    map[string]string `yaml:"args"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Hostname    string            `yaml:"hostname"`
	Restart     string            `yaml:"restart"`
	ReadOnly    bool              `yaml:"read_only"`
	Tmpfs       []string          `yaml:"tmpfs"`
	CapDrop     []string          `yaml:"cap_drop"`
	SecurityOpt []string          `yaml:"security_opt"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test     []string `yaml:"test"`
		Interval string   `yaml:"interval"`
		Timeout  string   `yaml:"timeout"`
		Retries  int      `yaml:"retries"`
	} `yaml:"healthcheck"`
}

// interpolation matches ${NAME}, ${NAME:-default} and ${NAME:?message}.
var interpolation = regexp.MustCompile(`\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}`)

// interpolate substitutes variables as Compose does from the .env file; a ${NAME:?…} without a
// value is an error, reported through missing.
func interpolate(text string, env map[string]string) (out string, missing []string) {
	out = interpolation.ReplaceAllStringFunc(text, func(m string) string {
		p := interpolation.FindStringSubmatch(m)
		if v, ok := env[p[1]]; ok && v != "" {
			return v
		}
		switch p[2] {
		case "-":
			return p[3]
		case "?":
			missing = append(missing, p[1])
		}
		return ""
	})
	return out, missing
}

func parseEnvFile(t *testing.T, rel string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for line := range strings.SplitSeq(readFile(t, rel), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not NAME=value: %q", rel, line)
		}
		env[k] = v
	}
	return env
}

func loadCompose(t *testing.T, env map[string]string) composeFile {
	t.Helper()
	text, missing := interpolate(readFile(t, "deploy/docker-compose.yml"), env)
	if len(missing) > 0 {
		t.Fatalf("variables without a value: %v", missing)
	}
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	var f composeFile
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for k := range f.Extensions {
		if !strings.HasPrefix(k, "x-") {
			t.Errorf("unknown top-level key %q", k)
		}
	}
	return f
}

// TestCompose checks deploy/docker-compose.yml: PostgreSQL, Redis, two control planes on one
// database with one admin token, and two runtimes that each list both cluster listeners and use a
// certificate an init step issued before they start.
func TestCompose(t *testing.T) {
	env := parseEnvFile(t, "deploy/compose.env.example")
	if env["GANTRY_ADMIN_TOKEN"] == "" || env["POSTGRES_PASSWORD"] == "" {
		t.Fatalf("compose.env.example lacks a variable: %v", env)
	}
	t.Run("secrets are required", func(t *testing.T) {
		_, missing := interpolate(readFile(t, "deploy/docker-compose.yml"), nil)
		slices.Sort(missing)
		if missing = slices.Compact(missing); !slices.Equal(missing, []string{"GANTRY_ADMIN_TOKEN", "POSTGRES_PASSWORD"}) {
			t.Errorf("without .env, compose stops for %v; want both secrets", missing)
		}
	})
	f := loadCompose(t, env)
	svc := func(name string) composeService {
		s, ok := f.Services[name]
		if !ok {
			t.Fatalf("no service %s", name)
		}
		return s
	}
	pg, redis := svc("postgres"), svc("redis")
	if !strings.HasPrefix(pg.Image, "postgres:") || pg.Healthcheck == nil || pg.Environment["POSTGRES_PASSWORD"] != env["POSTGRES_PASSWORD"] {
		t.Errorf("postgres: %+v", pg)
	}
	if !strings.HasPrefix(redis.Image, "redis:") {
		t.Errorf("redis image %q", redis.Image)
	}

	// Every service running the gantry image: a known command and flags, GANTRY_* that are flags.
	gantryServices := 0
	for name, s := range f.Services {
		if !strings.HasPrefix(s.Image, "gantry:") {
			continue
		}
		gantryServices++
		command := checkArgs(t, name, s.Command)
		var names []string
		for k := range s.Environment {
			names = append(names, k)
		}
		checkEnv(t, name, command, names)
		if s.Build == nil || filepath.Clean(filepath.Join(repoRoot, "deploy", s.Build.Context)) != repoRoot {
			t.Errorf("%s: does not build the root Dockerfile: %+v", name, s.Build)
		}
		if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") || !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
			t.Errorf("%s: not hardened (read_only, cap_drop ALL, no-new-privileges)", name)
		}
	}
	if gantryServices != 6 {
		t.Errorf("%d services run gantry, want 2 control planes, 2 certificate steps and 2 runtimes", gantryServices)
	}

	wantDB := "postgres://gantry:" + env["POSTGRES_PASSWORD"] + "@postgres:5432/gantry?sslmode=disable"
	var clusterAddrs []string
	for _, name := range []string{"cp1", "cp2"} {
		cp := svc(name)
		if !slices.Equal(cp.Command, []string{"serve"}) {
			t.Errorf("%s runs %v", name, cp.Command)
		}
		if cp.Environment["GANTRY_DATABASE_URL"] != wantDB || cp.Environment["GANTRY_ADMIN_TOKEN"] != env["GANTRY_ADMIN_TOKEN"] {
			t.Errorf("%s: database %q, admin token %q: want the shared ones", name, cp.Environment["GANTRY_DATABASE_URL"], cp.Environment["GANTRY_ADMIN_TOKEN"])
		}
		// The listener's certificate names the host name and the endpoint's host: runtimes
		// verify the name they dial.
		if cp.Hostname != name || cp.Environment["GANTRY_CLUSTER_ENDPOINT"] != "https://"+name+":8005" {
			t.Errorf("%s: hostname %q, cluster endpoint %q", name, cp.Hostname, cp.Environment["GANTRY_CLUSTER_ENDPOINT"])
		}
		clusterAddrs = append(clusterAddrs, name+":8005")
	}
	if c := svc("cp1").DependsOn["postgres"].Condition; c != "service_healthy" {
		t.Errorf("cp1 waits for postgres %q", c)
	}
	if c := svc("cp2").DependsOn["cp1"].Condition; c != "service_healthy" {
		t.Errorf("cp2 waits for cp1 %q: cp1 bootstraps an empty database first", c)
	}

	var orders []string
	for _, name := range []string{"runtime-1", "runtime-2"} {
		rt := svc(name)
		if !slices.Equal(rt.Command, []string{"runtime"}) {
			t.Errorf("%s runs %v", name, rt.Command)
		}
		addrs := strings.Split(rt.Environment["GANTRY_CONTROL_PLANE"], ",")
		orders = append(orders, addrs[0])
		if !slices.Equal(slices.Sorted(slices.Values(addrs)), clusterAddrs) {
			t.Errorf("%s: control planes %v, want both of %v", name, addrs, clusterAddrs)
		}
		// The certificate files come from the init step the runtime waits for.
		init := name + "-certs"
		if c := rt.DependsOn[init].Condition; c != "service_completed_successfully" {
			t.Errorf("%s waits for %s: %q", name, init, c)
		}
		is := svc(init)
		outDir := is.Command[slices.Index(is.Command, "--out-dir")+1]
		if !slices.Contains(is.Command, "--if-missing") {
			t.Errorf("%s issues a new certificate at every start (no --if-missing)", init)
		}
		if is.Environment["GANTRY_TOKEN"] != env["GANTRY_ADMIN_TOKEN"] || is.Environment["GANTRY_SERVER"] != "http://cp1:8080" {
			t.Errorf("%s: server %q token %q", init, is.Environment["GANTRY_SERVER"], is.Environment["GANTRY_TOKEN"])
		}
		for _, k := range []struct{ env, file string }{{"GANTRY_CERT", "tls.crt"}, {"GANTRY_KEY", "tls.key"}, {"GANTRY_CA", "ca.crt"}} {
			if got, want := rt.Environment[k.env], outDir+"/"+k.file; got != want {
				t.Errorf("%s: %s=%q, want %q", name, k.env, got, want)
			}
		}
		volumeOf := func(s composeService, path string) (name, mode string) {
			for _, v := range s.Volumes {
				p := strings.Split(v, ":")
				if strings.HasPrefix(path+"/", p[1]+"/") {
					mode = "rw"
					if len(p) > 2 {
						mode = p[2]
					}
					return p[0], mode
				}
			}
			return "", ""
		}
		wv, wmode := volumeOf(is, outDir)
		rv, rmode := volumeOf(rt, outDir)
		if wv == "" || wv != rv || wmode != "rw" || rmode != "ro" {
			t.Errorf("%s writes %s to volume %q (%s); %s reads volume %q (%s)", init, outDir, wv, wmode, name, rv, rmode)
		}
		if _, ok := f.Volumes[wv]; !ok {
			t.Errorf("volume %q is not declared", wv)
		}
	}
	if orders[0] == orders[1] {
		t.Errorf("both runtimes try %s first; list the control planes in different orders", orders[0])
	}

	// docker compose (or the older docker-compose) validates the whole file against its schema.
	for _, tool := range [][]string{{"docker", "compose"}, {"docker-compose"}} {
		if _, err := exec.LookPath(tool[0]); err != nil {
			continue
		}
		if tool[0] == "docker" && exec.Command("docker", "compose", "version").Run() != nil {
			continue
		}
		cmd := exec.Command(tool[0], append(tool[1:], "--env-file", filepath.Join(repoRoot, "deploy", "compose.env.example"),
			"-f", filepath.Join(repoRoot, "deploy", "docker-compose.yml"), "config", "-q")...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Errorf("%s config: %v\n%s", strings.Join(tool, " "), err, stderr.String())
		}
		t.Logf("%s config: valid", strings.Join(tool, " "))
		break
	}
}
