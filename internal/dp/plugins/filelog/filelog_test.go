package filelog_test

import (
	"bufio"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/logserializer"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/requesttermination"
)

func TestFileLog(t *testing.T) {
	for _, reopen := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "access.log")
		s := plugintest.New(t, plugintest.Options{Plugins: []plugin.PluginEntity{
			{Name: "file-log", Config: plugintest.Config(map[string]any{"path": path, "reopen": reopen})},
			{Name: "request-termination", Config: plugintest.Config(map[string]any{"status_code": 403, "trigger": "x-stop"})},
		}})
		s.Do(httptest.NewRequest("GET", "/one", nil))
		r := httptest.NewRequest("GET", "/two", nil)
		r.Header.Set("X-Stop", "1")
		s.Do(r)
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		var entries []logserializer.Entry
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var e logserializer.Entry
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatal(err)
			}
			entries = append(entries, e)
		}
		f.Close()
		if len(entries) != 2 || entries[0].Request.URI != "/one" || entries[0].Source != "upstream" ||
			entries[1].Response.Status != 403 || entries[1].Source != "kong" {
			t.Errorf("reopen=%v: entries %+v", reopen, entries)
		}
	}
}

func TestBadPath(t *testing.T) {
	if _, err := plugintest.Compile(plugintest.Options{Plugins: []plugin.PluginEntity{{Name: "file-log", Config: plugintest.Config(map[string]any{"path": "/tmp/a*b"})}}}); err == nil {
		t.Error("accepted")
	}
}
