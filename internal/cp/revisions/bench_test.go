package revisions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gantry-gw/gantry/internal/cp/adminapi"
	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/auth"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/google/uuid"
)

// historyBytes is the size of the recorded history of a group: every stored value of its
// revisions and revision_changes rows, in bytes.
func historyBytes(b *testing.B, st *sqlstore.Store, group string) int64 {
	b.Helper()
	size := "LENGTH(CAST(%s AS BLOB))"
	if st.Dialect() == "postgres" {
		size = "OCTET_LENGTH(%s)"
	}
	sz := func(col string) string { return "COALESCE(" + fmt.Sprintf(size, col) + ", 0)" }
	var changes, revs int64
	q := `SELECT COALESCE(SUM(` + sz("group_id") + `+` + sz("entity_type") + `+` + sz("entity_id") + `+` + sz("entity_key") + `+` + sz("op") + `+` + sz("before_doc") + `+` + sz("after_doc") + ` + 8 + 4), 0) FROM revision_changes WHERE group_id = ?`
	if err := st.DB().QueryRowContext(context.Background(), st.Rebind(q), group).Scan(&changes); err != nil {
		b.Fatal(err)
	}
	q = `SELECT COALESCE(SUM(` + sz("group_id") + `+` + sz("hash") + `+` + sz("actor_user_id") + `+` + sz("actor_token_id") + `+` + sz("source") + `+` + sz("summary") + ` + 8 + 8), 0) FROM revisions WHERE group_id = ?`
	if err := st.DB().QueryRowContext(context.Background(), st.Rebind(q), group).Scan(&revs); err != nil {
		b.Fatal(err)
	}
	return changes + revs
}

// pgDiskBytes is the on-disk size of the history tables (heap, TOAST and indexes) on PostgreSQL.
func pgDiskBytes(b *testing.B, st *sqlstore.Store) int64 {
	b.Helper()
	var n int64
	if _, err := st.DB().ExecContext(context.Background(), `VACUUM ANALYZE revisions, revision_changes`); err != nil {
		b.Fatal(err)
	}
	if err := st.DB().QueryRowContext(context.Background(), `SELECT pg_total_relation_size('revisions') + pg_total_relation_size('revision_changes')`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkRevisionStorage measures what history costs in a large group: a group of 10,000
// routes, then 100 changes of one route each. It reports the history bytes each of those
// revisions added (and, on PostgreSQL, the tables' growth on disk per revision) and the time of
// one change. Run it with -benchtime=1x: one iteration is the 100 changes.
func BenchmarkRevisionStorage(b *testing.B) {
	for _, dialect := range storetest.Dialects {
		b.Run(dialect, func(b *testing.B) {
			ctx := context.Background()
			st := storetest.Open(b, dialect)
			es := entitystore.New(st)
			g := newGroup(b, st)
			services, routes := lookup(b, "services"), lookup(b, "routes")
			svc := uuid.NewString()
			ids := make([]string, 10000)
			_, err := es.Write(ctx, g, func(tx *entitystore.Tx) error {
				if err := tx.Insert(services, doc(b, "services", map[string]any{"id": svc, "name": "svc", "host": "svc.internal"})); err != nil {
					return err
				}
				for i := range ids {
					ids[i] = uuid.NewString()
					d := doc(b, "routes", map[string]any{"id": ids[i], "name": fmt.Sprintf("route-%05d", i), "paths": []any{fmt.Sprintf("/r/%05d", i)},
						"methods": []any{"GET", "POST"}, "tags": []any{"team-a", "bench"}, "service": ref(svc)})
					if err := tx.Insert(routes, d); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			startBytes := historyBytes(b, st, g)
			var startDisk int64
			if dialect == "postgres" {
				startDisk = pgDiskBytes(b, st)
			}
			changes := 0
			b.ResetTimer()
			for i := range b.N {
				for j := range 100 {
					id := ids[(i*100+j)*37%len(ids)]
					_, err := es.Write(ctx, g, func(tx *entitystore.Tx) error {
						d, err := tx.Get(routes, id)
						if err != nil {
							return err
						}
						d["paths"] = []any{fmt.Sprintf("/changed/%d/%d", i, j)}
						d["updated_at"] = d["updated_at"].(int64) + 1
						return tx.Replace(routes, d)
					})
					if err != nil {
						b.Fatal(err)
					}
					changes++
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(historyBytes(b, st, g)-startBytes)/float64(changes), "history-bytes/revision")
			if dialect == "postgres" {
				b.ReportMetric(float64(pgDiskBytes(b, st)-startDisk)/float64(changes), "disk-bytes/revision")
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(changes), "ns/change")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// writeEnv is the Admin API alone on SQLite, to time single-entity writes through the whole HTTP
// stack (token check, validation, one write transaction with its history, the answer).
type writeEnv struct {
	srv   *httptest.Server
	token string
	base  string
}

func newWriteEnv(b *testing.B) *writeEnv {
	b.Helper()
	st := storetest.Open(b, "sqlite")
	tok := auth.NewToken()
	res, err := st.Bootstrap(context.Background(), store.BootstrapParams{OrgName: "Acme", Region: "us", AdminName: "admin",
		AdminToken: store.Token{Name: "admin", Hash: auth.HashToken(tok), Hint: auth.Hint(tok)}})
	if err != nil {
		b.Fatal(err)
	}
	a, err := api.New(api.Options{Store: st, Region: "us"})
	if err != nil {
		b.Fatal(err)
	}
	if err := adminapi.Register(a, entitystore.New(st), nil); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	b.Cleanup(srv.Close)
	e := &writeEnv{srv: srv, token: tok, base: "/v2/runtime-groups/" + res.Group.ID + "/core-entities"}
	for i := range 200 {
		e.do(b, "POST", "/services", map[string]any{"name": fmt.Sprintf("svc-%03d", i), "host": "h.test"}, 201)
	}
	return e
}

func (e *writeEnv) do(b *testing.B, method, path string, body any, want int) {
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, e.srv.URL+e.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+e.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	if res.StatusCode != want {
		b.Fatalf("%s %s: %d, want %d", method, path, res.StatusCode, want)
	}
}

// BenchmarkAdminAPIWrite times single-entity Admin API writes, each one revision with its
// history: a creation, an update (whose previous document is read for history) and a delete
// (whose cascaded children are read for history). Comparing with the same benchmark on a build
// without history gives the cost of recording it.
func BenchmarkAdminAPIWrite(b *testing.B) {
	b.Run("create", func(b *testing.B) {
		e := newWriteEnv(b)
		i := 0
		for b.Loop() {
			i++
			e.do(b, "POST", "/consumers", map[string]any{"username": fmt.Sprintf("c%d", i)}, 201)
		}
	})
	b.Run("update", func(b *testing.B) {
		e := newWriteEnv(b)
		i := 0
		for b.Loop() {
			i++
			e.do(b, "PATCH", fmt.Sprintf("/services/svc-%03d", i%200), map[string]any{"retries": i%10 + 1}, 200)
		}
	})
	b.Run("delete", func(b *testing.B) {
		e := newWriteEnv(b)
		i := 0
		for b.Loop() {
			i++
			b.StopTimer()
			e.do(b, "POST", "/consumers", map[string]any{"username": fmt.Sprintf("d%d", i)}, 201)
			e.do(b, "POST", fmt.Sprintf("/consumers/d%d/key-auth", i), map[string]any{"key": fmt.Sprintf("key-%d", i)}, 201)
			b.StartTimer()
			e.do(b, "DELETE", fmt.Sprintf("/consumers/d%d", i), nil, 204)
		}
	})
}
