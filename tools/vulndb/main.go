// Command vulndb builds a local Go vulnerability database for `govulncheck -db file:///DIR` from
// the OSV entries of the golang.org/x/vulndb module, which the Go module proxy serves: CI reaches
// the module proxy but not vuln.go.dev.
//
// The database has the v1 layout that govulncheck reads from a directory:
//
//	index/db.json       {"modified": time}: the latest modification of any entry
//	index/modules.json  [{"path": module, "vulns": [{"id", "modified"}]}] sorted by path and id
//	ID/<GO-ID>.json     one OSV entry each, as the module holds it
//
// The modules index leaves out each vulnerability's "fixed" version, which govulncheck only uses
// to skip reading entries; it reads every entry of a module in use and matches its ranges itself.
//
// Usage:
//
//	go run ./tools/vulndb -version v0.0.0-20261105234957-e22db6528018 -o DIR
//	go run ./tools/vulndb -osv DIR_OF_OSV_JSON -o DIR
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const vulndbModule = "golang.org/x/vulndb"

func main() {
	log.SetFlags(0)
	log.SetPrefix("vulndb: ")
	version := flag.String("version", "", "version of "+vulndbModule+" to download through the module proxy")
	osvDir := flag.String("osv", "", "directory of OSV entries (<GO-ID>.json) to use instead of downloading")
	modified := flag.String("modified", "", "database modification time (RFC 3339) when the entries carry none; with -version, the module's commit time")
	out := flag.String("o", "", "directory to write the database to (replaced)")
	flag.Parse()
	if *out == "" || (*version == "") == (*osvDir == "") {
		log.Fatal("usage: vulndb (-version V | -osv DIR) -o DIR")
	}
	var floor time.Time
	if *modified != "" {
		t, err := time.Parse(time.RFC3339, *modified)
		if err != nil {
			log.Fatalf("-modified: %v", err)
		}
		floor = t
	}
	src := *osvDir
	if *version != "" {
		dir, commitTime, err := download(*version)
		if err != nil {
			log.Fatal(err)
		}
		src = filepath.Join(dir, "data", "osv")
		if floor.IsZero() {
			floor = commitTime
		}
	}
	st, err := build(src, *out, floor)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("%d entries for %d modules, modified %s, in %s", st.entries, st.modules, st.modified.Format(time.RFC3339), *out)
}

// download fetches the vulndb module through the module proxy (GOPROXY) into the module cache and
// returns its directory and commit time.
func download(version string) (dir string, commitTime time.Time, err error) {
	// Outside any module, so that this repository's go.mod and go.sum stay as they are.
	tmp, err := os.MkdirTemp("", "vulndb-download-")
	if err != nil {
		return "", time.Time{}, err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", vulndbModule+"@"+version) //nolint:gosec // no shell; the version is one argument
	cmd.Dir = tmp
	cmd.Stderr = os.Stderr
	raw, err := cmd.Output()
	var res struct {
		Dir, Info, Error string
	}
	if jerr := json.Unmarshal(raw, &res); jerr != nil {
		return "", time.Time{}, fmt.Errorf("go mod download %s@%s: %w", vulndbModule, version, errors.Join(err, jerr))
	}
	if res.Error != "" || err != nil {
		return "", time.Time{}, fmt.Errorf("go mod download %s@%s: %s %w", vulndbModule, version, res.Error, err)
	}
	info, err := os.ReadFile(res.Info)
	if err != nil {
		return "", time.Time{}, err
	}
	var meta struct{ Time time.Time }
	if err := json.Unmarshal(info, &meta); err != nil {
		return "", time.Time{}, fmt.Errorf("%s: %w", res.Info, err)
	}
	return res.Dir, meta.Time, nil
}

// entry is the part of an OSV entry that the indexes need.
type entry struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Affected []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
	} `json:"affected"`
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
}

type moduleMeta struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

type stats struct {
	entries, modules int
	modified         time.Time
}

// build writes the database for the OSV entries in src to out, replacing out only once the whole
// database is written. Entries with no modification time take floor.
func build(src, out string, floor time.Time) (stats, error) {
	files, err := filepath.Glob(filepath.Join(src, "*.json"))
	if err != nil {
		return stats{}, err
	}
	if len(files) == 0 {
		return stats{}, fmt.Errorf("no OSV entries in %s", src)
	}
	if err := os.MkdirAll(filepath.Dir(filepath.Clean(out)), 0o750); err != nil {
		return stats{}, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Clean(out)), ".vulndb-")
	if err != nil {
		return stats{}, err
	}
	defer func() { _ = os.RemoveAll(tmp) }() // once renamed to out, there is nothing left to remove
	for _, d := range []string{"ID", "index"} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o750); err != nil {
			return stats{}, err
		}
	}

	st := stats{modified: floor}
	modules := map[string]*moduleMeta{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return stats{}, err
		}
		var e entry
		if err := json.Unmarshal(raw, &e); err != nil {
			return stats{}, fmt.Errorf("%s: %w", f, err)
		}
		if e.ID == "" || filepath.Base(f) != e.ID+".json" {
			return stats{}, fmt.Errorf("%s: holds entry %q; want <ID>.json", f, e.ID)
		}
		if e.Modified.IsZero() {
			e.Modified = floor
		}
		if e.Modified.After(st.modified) {
			st.modified = e.Modified
		}
		for _, a := range e.Affected {
			path := a.Package.Name
			m := modules[path]
			if m == nil {
				m = &moduleMeta{Path: path}
				modules[path] = m
			}
			if !slices.ContainsFunc(m.Vulns, func(v moduleVuln) bool { return v.ID == e.ID }) {
				m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: e.Modified})
			}
		}
		if err := os.WriteFile(filepath.Join(tmp, "ID", filepath.Base(f)), raw, 0o600); err != nil { //nolint:gosec // a base name, checked against the entry's id above
			return stats{}, err
		}
		st.entries++
	}

	index := make([]*moduleMeta, 0, len(modules))
	for _, m := range modules {
		slices.SortFunc(m.Vulns, func(a, b moduleVuln) int { return strings.Compare(a.ID, b.ID) })
		index = append(index, m)
	}
	slices.SortFunc(index, func(a, b *moduleMeta) int { return cmp.Compare(a.Path, b.Path) })
	st.modules = len(index)
	if err := writeJSON(filepath.Join(tmp, "index", "modules.json"), index); err != nil {
		return stats{}, err
	}
	if err := writeJSON(filepath.Join(tmp, "index", "db.json"), struct {
		Modified time.Time `json:"modified"`
	}{st.modified}); err != nil {
		return stats{}, err
	}
	if err := os.RemoveAll(out); err != nil {
		return stats{}, err
	}
	if err := os.Rename(tmp, out); err != nil {
		return stats{}, err
	}
	return st, nil
}

func writeJSON(path string, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	if err := enc.Encode(v); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o600)
}
