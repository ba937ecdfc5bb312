package provision

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite testdata/install.sh.golden")

// fakeMounter routes like *api.API: Mount requires an Authorization header, MountPublic does not,
// and LookupGroup knows one group.
type fakeMounter struct {
	mux   *http.ServeMux
	group store.RuntimeGroup
}

func newFakeMounter() *fakeMounter {
	return &fakeMounter{mux: http.NewServeMux(), group: store.RuntimeGroup{ID: "0b4f7e1c-5a57-4c4e-9d3a-7c1f0a2b3c4d", Name: "edge: \"eu\"\n- x"}}
}

func (f *fakeMounter) Mount(pattern string, h http.Handler) {
	f.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
}

func (f *fakeMounter) MountPublic(pattern string, h http.Handler) { f.mux.Handle(pattern, h) }

func (f *fakeMounter) LookupGroup(r *http.Request, id string) (store.RuntimeGroup, error) {
	if id != f.group.ID {
		return store.RuntimeGroup{}, &api.Problem{Status: http.StatusNotFound, Detail: "no such group"}
	}
	return f.group, nil
}

func newServer(t *testing.T, opts Options) *httptest.Server {
	t.Helper()
	s := New(opts)
	t.Cleanup(func() { _ = s.Close() })
	m := newFakeMounter()
	s.Mount(m)
	srv := httptest.NewServer(m.mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestDownload(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(want)
	srv := newServer(t, Options{})
	here := "/downloads/gantry/" + goruntime.GOOS + "/" + goruntime.GOARCH

	t.Run("binary", func(t *testing.T) {
		resp, body := get(t, http.MethodGet, srv.URL+here)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/octet-stream" {
			t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if resp.ContentLength != int64(len(want)) || !bytes.Equal(body, want) {
			t.Fatalf("served %d bytes (Content-Length %d), the executable has %d or differs", len(body), resp.ContentLength, len(want))
		}
	})
	t.Run("sha256", func(t *testing.T) {
		for range 2 { // computed once, then cached
			resp, body := get(t, http.MethodGet, srv.URL+here+".sha256")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got, wantLine := string(body), hex.EncodeToString(sum[:])+"  gantry\n"; got != wantLine {
				t.Fatalf("checksum %q, want %q", got, wantLine)
			}
		}
	})
	t.Run("head", func(t *testing.T) {
		resp, body := get(t, http.MethodHead, srv.URL+here)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Length") != itoa(len(want)) || len(body) != 0 {
			t.Fatalf("status %d, Content-Length %q, %d body bytes", resp.StatusCode, resp.Header.Get("Content-Length"), len(body))
		}
	})
	t.Run("other platforms", func(t *testing.T) {
		other := "windows"
		if goruntime.GOOS == "windows" {
			other = "linux"
		}
		for _, path := range []string{
			"/downloads/gantry/" + other + "/" + goruntime.GOARCH,
			"/downloads/gantry/" + other + "/" + goruntime.GOARCH + ".sha256",
			"/downloads/gantry/" + goruntime.GOOS + "/riscv64",
		} {
			resp, body := get(t, http.MethodGet, srv.URL+path)
			var p api.Problem
			if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/problem+json" || json.Unmarshal(body, &p) != nil {
				t.Fatalf("%s: status %d, type %q, body %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			if !strings.Contains(p.Detail, "for "+goruntime.GOOS+"/"+goruntime.GOARCH+" only") || !strings.Contains(p.Detail, "release") {
				t.Fatalf("%s: detail %q does not name the served platform and where others come from", path, p.Detail)
			}
		}
	})
	t.Run("unreadable executable", func(t *testing.T) {
		srv := newServer(t, Options{Executable: filepath.Join(t.TempDir(), "missing")})
		resp, _ := get(t, http.MethodGet, srv.URL+here)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", resp.StatusCode)
		}
	})
}

func get(t *testing.T, method, url string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestInstallScriptServed(t *testing.T) {
	srv := newServer(t, Options{})
	resp, body := get(t, http.MethodGet, srv.URL+"/install.sh")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/x-shellscript") {
		t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !bytes.Contains(body, []byte("API_DEFAULT='"+srv.URL+"'\n")) {
		t.Fatalf("the script's default API is not %s", srv.URL)
	}
	if bytes.Contains(body, []byte(apiPlaceholder)) {
		t.Fatal("the placeholder was left in the script")
	}
}

func TestAPIURL(t *testing.T) {
	for _, tc := range []struct {
		host string
		tls  bool
		want string
	}{
		{"cp.example.com:8080", false, "http://cp.example.com:8080"},
		{"cp.example.com", true, "https://cp.example.com"},
		{"127.0.0.1:8080", false, "http://127.0.0.1:8080"},
		{"[::1]:8080", false, "http://[::1]:8080"},
		{"cp';rm -rf /;'", false, ""},
		{"cp$(id)", false, ""},
		{"", false, ""},
	} {
		t.Run(tc.host, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/install.sh", nil)
			r.Host = tc.host
			if !tc.tls {
				r.TLS = nil
			} else if r.TLS == nil {
				r.TLS = &tls.ConnectionState{}
			}
			if got := APIURL(r); got != tc.want {
				t.Fatalf("APIURL = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestInstallScriptGolden(t *testing.T) {
	got := Script("https://cp.example.com:8080")
	golden := filepath.Join("testdata", "install.sh.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestInstallScriptGolden -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("install.sh differs from testdata/install.sh.golden; review the change and run go test -run TestInstallScriptGolden -update")
	}
	out, err := exec.Command("sh", "-n", golden).CombinedOutput()
	if err != nil {
		t.Fatalf("sh -n: %v\n%s", err, out)
	}
	// shellcheck is optional on developer machines; CI images that have it check the POSIX
	// dialect too.
	if path, err := exec.LookPath("shellcheck"); err == nil {
		out, err := exec.Command(path, "-s", "sh", golden).CombinedOutput()
		if err != nil {
			t.Fatalf("shellcheck: %v\n%s", err, out)
		}
	} else {
		t.Log("shellcheck not installed: only sh -n checked")
	}
}

// writeScript writes the script with apiURL as its default and returns its path.
func writeScript(t *testing.T, apiURL string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "install.sh")
	if err := os.WriteFile(path, Script(apiURL), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// runScript runs sh script args and returns its exit code, stdout and stderr.
func runScript(t *testing.T, script string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("sh", append([]string{script}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	default:
		t.Fatal(err)
		return 0, "", ""
	}
}

func TestInstallScriptArguments(t *testing.T) {
	script := writeScript(t, "https://cp.example.com:8080")
	code, out, _ := runScript(t, script, "--help")
	if code != 0 || !strings.Contains(out, "Usage: sh install.sh") || !strings.Contains(out, "https://cp.example.com:8080/install.sh") {
		t.Fatalf("--help: exit %d, output:\n%s", code, out)
	}
	token := "gent_abc123.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown argument", []string{"--frobnicate"}, "unknown argument: --frobnicate"},
		{"missing value", []string{"--token"}, "--token needs a value"},
		{"no token", []string{"--platform", "linux", "--control-plane", "cp:8005"}, "--token is required"},
		{"admin token", []string{"--token", "gpat_x", "--platform", "linux", "--control-plane", "cp:8005"}, "enrollment token"},
		{"token without CA fingerprint", []string{"--token", "gent_abc", "--platform", "linux", "--control-plane", "cp:8005"}, "whole enrollment token"},
		{"token with quote", []string{"--token", "gent_a'b.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "--platform", "linux", "--control-plane", "cp:8005"}, "copied whole"},
		{"no control plane", []string{"--token", token, "--platform", "linux"}, "--control-plane is required"},
		{"no platform", []string{"--token", token, "--control-plane", "cp:8005"}, "--platform is required"},
		{"bad platform", []string{"--token", token, "--control-plane", "cp:8005", "--platform", "windows"}, "must be linux or docker"},
		{"kong on linux", []string{"--token", token, "--control-plane", "cp:8005", "--platform", "linux", "--runtime", "kong"}, "docker only"},
		{"relative data dir", []string{"--token", token, "--control-plane", "cp:8005", "--platform", "linux", "--data-dir", "rel"}, "absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runScript(t, script, tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "--help") {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errOut, tc.want)
			}
		})
	}
}

// fakeBinary is a stand-in for gantry that records its arguments, one a line.
const fakeBinary = "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > \"$FAKE_GANTRY_ARGS\"\n"

// binaryServer serves fakeBinary at any path and checksum at any .sha256 path, and records the
// paths asked for.
func binaryServer(t *testing.T, checksum string) (*httptest.Server, *[]string) {
	t.Helper()
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path)
		if strings.HasSuffix(r.URL.Path, ".sha256") {
			_, _ = io.WriteString(w, checksum+"  gantry\n")
			return
		}
		_, _ = io.WriteString(w, fakeBinary)
	}))
	t.Cleanup(srv.Close)
	return srv, &paths
}

func TestInstallScriptLinuxForeground(t *testing.T) {
	if goruntime.GOOS != "linux" || (goruntime.GOARCH != "amd64" && goruntime.GOARCH != "arm64") {
		t.Skip("the script maps uname to linux/amd64 and linux/arm64")
	}
	good := sha256.Sum256([]byte(fakeBinary))
	tok := "gent_abc.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	t.Run("installs, verifies and execs the runtime", func(t *testing.T) {
		srv, paths := binaryServer(t, hex.EncodeToString(good[:]))
		prefix, data := t.TempDir(), filepath.Join(t.TempDir(), "state")
		argsFile := filepath.Join(t.TempDir(), "args")
		t.Setenv("FAKE_GANTRY_ARGS", argsFile)
		code, out, errOut := runScript(t, writeScript(t, srv.URL), "--platform", "linux", "--no-systemd", "--prefix", prefix, "--data-dir", data,
			"--token", tok, "--control-plane", "https://cp.example.com:8005", "--", "--proxy-listen", ":9000", "--label", "a=b c")
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		want := "/downloads/gantry/linux/" + goruntime.GOARCH
		if strings.Join(*paths, ",") != want+","+want+".sha256" {
			t.Fatalf("requested %v", *paths)
		}
		args, err := os.ReadFile(argsFile)
		if err != nil {
			t.Fatal(err)
		}
		wantArgs := "runtime\n--enroll\n" + tok + "\n--control-plane\nhttps://cp.example.com:8005\n--cache-dir\n" + data + "\n--proxy-listen\n:9000\n--label\na=b c\n"
		if string(args) != wantArgs {
			t.Fatalf("gantry ran with\n%s\nwant\n%s", args, wantArgs)
		}
		fi, err := os.Stat(data)
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("data dir: %v, mode %v", err, fi.Mode())
		}
	})
	t.Run("refuses a checksum mismatch", func(t *testing.T) {
		srv, _ := binaryServer(t, strings.Repeat("0", 64))
		prefix := t.TempDir()
		code, _, errOut := runScript(t, writeScript(t, ""), "--platform", "linux", "--no-systemd", "--prefix", prefix, "--data-dir", filepath.Join(prefix, "d"),
			"--token", tok, "--control-plane", "cp:8005", "--api", srv.URL)
		if code != 1 || !strings.Contains(errOut, "checksum mismatch") || !strings.Contains(errOut, "nothing was installed") {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
		if _, err := os.Stat(filepath.Join(prefix, "bin", "gantry")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a binary was installed despite the mismatch: %v", err)
		}
	})
	t.Run("no api", func(t *testing.T) {
		code, _, errOut := runScript(t, writeScript(t, ""), "--platform", "linux", "--no-systemd", "--token", tok, "--control-plane", "cp:8005")
		if code != 2 || !strings.Contains(errOut, "--api is required") {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
	})
}

// TestInstallScriptSystemd runs the systemd path with stand-ins for id, useradd, chown and
// systemctl on the PATH and the /etc files under GANTRY_INSTALL_ROOT.
func TestInstallScriptSystemd(t *testing.T) {
	if goruntime.GOOS != "linux" || (goruntime.GOARCH != "amd64" && goruntime.GOARCH != "arm64") {
		t.Skip("the script maps uname to linux/amd64 and linux/arm64")
	}
	good := sha256.Sum256([]byte(fakeBinary))
	srv, _ := binaryServer(t, hex.EncodeToString(good[:]))
	stubs, root, prefix := t.TempDir(), t.TempDir(), t.TempDir()
	data := filepath.Join(t.TempDir(), "state")
	calls := filepath.Join(t.TempDir(), "calls")
	for name, body := range map[string]string{
		"id":        "[ \"$1\" = -u ] && echo 0\nexit 0\n",
		"useradd":   "exit 0\n",
		"chown":     "exit 0\n",
		"systemctl": "echo \"systemctl $*\" >> \"$STUB_CALLS\"\n",
	} {
		if err := os.WriteFile(filepath.Join(stubs, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", stubs+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("GANTRY_INSTALL_ROOT", root)
	t.Setenv("STUB_CALLS", calls)
	tok := "gent_abc.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	code, out, errOut := runScript(t, writeScript(t, srv.URL), "--platform", "linux", "--prefix", prefix, "--data-dir", data,
		"--token", tok, "--control-plane", "cp.example.com:8005", "--", "--label", `a=b "c"`, "--hostname", "edge-$1%")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	unitPath := filepath.Join(root, "etc", "systemd", "system", "gantry-runtime.service")
	unit, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	wantExec := "ExecStart=\"" + prefix + "/bin/gantry\" runtime --enroll ${GANTRY_ENROLL_TOKEN} --control-plane \"cp.example.com:8005\" --cache-dir \"" + data +
		`" "--label" "a=b \"c\"" "--hostname" "edge-$$1%%"` + "\n"
	for _, want := range []string{wantExec, "EnvironmentFile=/etc/gantry/runtime-enroll.env\n", "ReadWritePaths=" + data + "\n", "User=gantry\n",
		"NoNewPrivileges=yes\n", "ProtectSystem=strict\n"} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("the unit lacks %q:\n%s", want, unit)
		}
	}
	if bytes.Contains(unit, []byte(tok)) {
		t.Error("the world-readable unit holds the token")
	}
	env := filepath.Join(root, "etc", "gantry", "runtime-enroll.env")
	if b, err := os.ReadFile(env); err != nil || string(b) != "GANTRY_ENROLL_TOKEN="+tok+"\n" {
		t.Fatalf("environment file: %v %q", err, b)
	}
	if fi, _ := os.Stat(env); fi.Mode().Perm() != 0o600 {
		t.Fatalf("environment file mode %v, want 0600", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(calls); string(b) != "systemctl daemon-reload\nsystemctl enable --now gantry-runtime.service\n" {
		t.Fatalf("systemctl calls:\n%s", b)
	}
	if path, err := exec.LookPath("systemd-analyze"); err == nil {
		// It exits 0 on unknown keys and bad values, only printing them: any output fails.
		out, err := exec.Command(path, "verify", unitPath).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	} else {
		t.Log("systemd-analyze not installed: the unit was checked by content only")
	}
}

// dockerStub records each docker call (one argument a line, calls separated by "--") and, for
// the one-shot enrollment container, writes the enrolled files into the directory mounted at
// /var/lib/gantry as gantry runtime --enroll would.
const dockerStub = `#!/bin/sh
for a in "$@"; do printf '%s\n' "$a"; done >> "$STUB_CALLS"
echo -- >> "$STUB_CALLS"
enroll=no
dir=
prev=
for a in "$@"; do
	[ "$a" = gantry-enroll ] && enroll=yes
	[ "$prev" = -v ] && dir=${a%%:*}
	prev=$a
done
if [ "$1" = run ] && [ "$enroll" = yes ]; then
	mkdir -p "$dir/enrollment"
	for f in tls.crt tls.key ca.crt; do echo "$f" > "$dir/enrollment/$f"; done
fi
exit 0
`

func TestInstallScriptDocker(t *testing.T) {
	stubs := t.TempDir()
	if err := os.WriteFile(filepath.Join(stubs, "docker"), []byte(dockerStub), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", stubs+string(os.PathListSeparator)+os.Getenv("PATH"))
	tok := "gent_abc.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		runtime string
		extra   []string
		want    func(data string) []string // the docker calls, each joined with spaces
	}{
		{"gantry", []string{"--", "--label", "zone=eu 1"}, func(data string) []string {
			return []string{"run -d --name gantry-runtime --restart unless-stopped -v " + data + ":/var/lib/gantry -p 8000:8000 -p 8443:8443 " + DefaultImage +
				" runtime --enroll " + tok + " --control-plane https://cp.example.com:8005 --cache-dir /var/lib/gantry --label zone=eu 1"}
		}},
		{"kong", nil, func(data string) []string {
			return []string{
				"rm -f gantry-enroll",
				"run -d --name gantry-enroll -v " + data + ":/var/lib/gantry " + DefaultImage + " runtime --enroll " + tok +
					" --control-plane https://cp.example.com:8005 --cache-dir /var/lib/gantry --proxy-listen off --proxy-tls-listen off",
				"rm -f gantry-enroll",
				"run -d --name kong-dp --restart unless-stopped -v " + data + "/kong:/etc/kong/cluster:ro -p 8000:8000 -p 8443:8443" +
					" -e KONG_ROLE=data_plane -e KONG_DATABASE=off -e KONG_CLUSTER_MTLS=pki" +
					" -e KONG_CLUSTER_CONTROL_PLANE=cp.example.com:8005 -e KONG_CLUSTER_SERVER_NAME=cp.example.com" +
					" -e KONG_CLUSTER_TELEMETRY_ENDPOINT=cp.example.com:8005 -e KONG_CLUSTER_TELEMETRY_SERVER_NAME=cp.example.com" +
					" -e KONG_CLUSTER_CERT=/etc/kong/cluster/tls.crt -e KONG_CLUSTER_CERT_KEY=/etc/kong/cluster/tls.key" +
					" -e KONG_CLUSTER_CA_CERT=/etc/kong/cluster/ca.crt -e KONG_LUA_SSL_TRUSTED_CERTIFICATE=/etc/kong/cluster/ca.crt,system" +
					" -e KONG_PROXY_LISTEN=0.0.0.0:8000, 0.0.0.0:8443 ssl kong:3.10",
			}
		}},
	} {
		t.Run(tc.runtime, func(t *testing.T) {
			calls := filepath.Join(t.TempDir(), "calls")
			t.Setenv("STUB_CALLS", calls)
			data := filepath.Join(t.TempDir(), "gantry")
			args := append([]string{"--platform", "docker", "--runtime", tc.runtime, "--data-dir", data, "--token", tok,
				"--control-plane", "https://cp.example.com:8005"}, tc.extra...)
			code, out, errOut := runScript(t, writeScript(t, ""), args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s%s", code, out, errOut)
			}
			raw, err := os.ReadFile(calls)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, call := range strings.Split(strings.TrimSuffix(string(raw), "--\n"), "--\n") {
				got = append(got, strings.Join(strings.Split(strings.TrimSuffix(call, "\n"), "\n"), " "))
			}
			if want := tc.want(data); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("docker calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if tc.runtime == "kong" {
				for _, f := range []string{"tls.crt", "tls.key", "ca.crt"} {
					if b, err := os.ReadFile(filepath.Join(data, "kong", f)); err != nil || string(b) != f+"\n" {
						t.Fatalf("kong's copy of %s: %v %q", f, err, b)
					}
				}
			}
		})
	}
	t.Run("kong refuses runtime flags", func(t *testing.T) {
		code, _, errOut := runScript(t, writeScript(t, ""), "--platform", "docker", "--runtime", "kong", "--data-dir", t.TempDir(), "--token", tok,
			"--control-plane", "cp:8005", "--", "--label", "a=b")
		if code != 2 || !strings.Contains(errOut, "KONG_*") {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
	})
}

func TestManifest(t *testing.T) {
	m := newFakeMounter()
	s := New(Options{ClusterEndpoint: "https://cp.example.com:8005"})
	t.Cleanup(func() { _ = s.Close() })
	s.Mount(m)
	srv := httptest.NewServer(m.mux)
	t.Cleanup(srv.Close)
	base := srv.URL + "/v2/runtime-groups/" + m.group.ID + "/kubernetes-manifest"
	do := func(url string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer x")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}

	t.Run("renders", func(t *testing.T) {
		resp, body := do(base + "?token=gent_tok3n.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/yaml") {
			t.Fatalf("status %d, type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		dec := yaml.NewDecoder(bytes.NewReader(body))
		kinds := map[string]map[string]any{}
		for {
			var doc map[string]any
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("not YAML: %v\n%s", err, body)
			}
			kinds[doc["kind"].(string)] = doc
		}
		if len(kinds) != 3 || kinds["Secret"] == nil || kinds["Deployment"] == nil || kinds["Service"] == nil {
			t.Fatalf("documents %v", kinds)
		}
		if tok := kinds["Secret"]["stringData"].(map[string]any)["token"]; tok != "gent_tok3n.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" {
			t.Fatalf("secret token %v", tok)
		}
		pod := kinds["Deployment"]["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
		c := pod["containers"].([]any)[0].(map[string]any)
		args, _ := json.Marshal(c["args"])
		if string(args) != `["runtime","--enroll","$(GANTRY_ENROLL_TOKEN)","--control-plane","https://cp.example.com:8005","--cache-dir","/var/lib/gantry"]` {
			t.Fatalf("args %s", args)
		}
		if c["image"] != DefaultImage {
			t.Fatalf("image %v", c["image"])
		}
	})
	for _, tc := range []struct{ name, query, rule string }{
		{"missing token", "", "required"},
		{"not an enrollment token", "?token=gpat_abc", "pattern"},
		{"no CA fingerprint", "?token=gent_abc", "pattern"},
		{"token with YAML", "?token=gent_a%0A%20%20x:%20y.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "pattern"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(base + tc.query)
			var p api.Problem
			if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(body, &p) != nil || len(p.InvalidParameters) != 1 ||
				p.InvalidParameters[0].Field != "token" || p.InvalidParameters[0].Rule != tc.rule {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
		})
	}
	t.Run("unknown group", func(t *testing.T) {
		resp, _ := do(srv.URL + "/v2/runtime-groups/nope/kubernetes-manifest?token=gent_x")
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("authenticated", func(t *testing.T) {
		resp, _ := get(t, http.MethodGet, base+"?token=gent_x")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d without a token", resp.StatusCode)
		}
	})
}
