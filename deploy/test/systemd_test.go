package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// unitFile maps "Section.Key" to the values of every line setting it, in order.
type unitFile map[string][]string

func parseUnit(t *testing.T, rel string) unitFile {
	t.Helper()
	u := unitFile{}
	section := ""
	for line := range strings.SplitSeq(readFile(t, rel), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: not Key=value: %q", rel, line)
			}
			u[section+"."+k] = append(u[section+"."+k], v)
		}
	}
	return u
}

func (u unitFile) last(key string) string {
	if v := u[key]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

// TestSystemdUnits checks both units: the command and its GANTRY_* settings exist, the
// hardening and restart policy are in place, the example environment files name real flags,
// and systemd itself finds nothing to complain about (systemd-analyze verify), when present.
func TestSystemdUnits(t *testing.T) {
	cases := []struct {
		unit, command, envFile, example string
	}{
		{"gantry-serve.service", "serve", "/etc/gantry/serve.env", "serve.env.example"},
		{"gantry-runtime.service", "runtime", "/etc/gantry/runtime.env", "runtime.env.example"},
	}
	want := map[string]string{
		"Service.NoNewPrivileges":       "yes",
		"Service.ProtectSystem":         "strict",
		"Service.ProtectHome":           "yes",
		"Service.PrivateTmp":            "yes",
		"Service.StateDirectory":        "gantry",
		"Service.DynamicUser":           "yes",
		"Service.User":                  "gantry",
		"Service.Restart":               "on-failure",
		"Service.LimitNOFILE":           "65536",
		"Service.CapabilityBoundingSet": "",
		"Install.WantedBy":              "multi-user.target",
	}
	for _, c := range cases {
		t.Run(c.unit, func(t *testing.T) {
			u := parseUnit(t, "deploy/systemd/"+c.unit)
			for k, v := range want {
				if got, ok := u[k]; !ok || u.last(k) != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			argv := strings.Fields(u.last("Service.ExecStart"))
			if len(argv) == 0 || argv[0] != "/usr/local/bin/gantry" {
				t.Fatalf("ExecStart %v", argv)
			}
			if got := checkArgs(t, c.unit, argv[1:]); got != c.command {
				t.Errorf("runs 'gantry %s', want %s", got, c.command)
			}
			if !slices.Contains(u["Service.EnvironmentFile"], "-"+c.envFile) {
				t.Errorf("EnvironmentFile %v, want optional %s", u["Service.EnvironmentFile"], c.envFile)
			}
			var names []string
			for _, kv := range u["Service.Environment"] {
				k, v, _ := strings.Cut(kv, "=")
				names = append(names, k)
				// Whatever it writes is under its state directory (ProtectSystem=strict).
				if (k == "GANTRY_DATA_DIR" || k == "GANTRY_CACHE_DIR") && !strings.HasPrefix(v, "/var/lib/gantry/") {
					t.Errorf("%s=%s is outside the state directory", k, v)
				}
			}
			for k := range parseEnvFile(t, "deploy/systemd/"+c.example) {
				names = append(names, k)
			}
			checkEnv(t, c.unit, c.command, names)
			if c.command == "runtime" {
				// The client certificate comes in as credentials, read from the credentials
				// directory (%d).
				for _, f := range []string{"tls.crt", "tls.key", "ca.crt"} {
					if !slices.Contains(u["Service.LoadCredential"], f+":/etc/gantry/runtime/"+f) {
						t.Errorf("no LoadCredential for %s: %v", f, u["Service.LoadCredential"])
					}
				}
				for _, kv := range []string{"GANTRY_CERT=%d/tls.crt", "GANTRY_KEY=%d/tls.key", "GANTRY_CA=%d/ca.crt"} {
					if !slices.Contains(u["Service.Environment"], kv) {
						t.Errorf("no Environment=%s", kv)
					}
				}
			}
		})
	}

	t.Run("systemd-analyze verify", func(t *testing.T) {
		if _, err := exec.LookPath("systemd-analyze"); err != nil {
			t.Skip("systemd-analyze is not installed")
		}
		// verify checks that ExecStart's binary exists: point it at the one built here.
		dir := t.TempDir()
		var paths []string
		for _, c := range cases {
			text := strings.ReplaceAll(readFile(t, "deploy/systemd/"+c.unit), "/usr/local/bin/gantry", gantryBin)
			p := filepath.Join(dir, c.unit)
			if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
		}
		// It exits 0 on unknown keys and bad values, only printing them: any output fails.
		out, err := exec.Command("systemd-analyze", append([]string{"verify"}, paths...)...).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})
}
