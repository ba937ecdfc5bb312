package declarative_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/declarative"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/google/uuid"
)

// largeFile is a declarative file of n services, each with one route nested in it, and n
// consumers, as JSON.
func largeFile(b *testing.B, n int) []byte {
	b.Helper()
	services := make([]any, n)
	consumers := make([]any, n)
	for i := range n {
		services[i] = map[string]any{"name": fmt.Sprintf("svc-%05d", i), "url": fmt.Sprintf("http://backend-%05d.internal:8080/v1", i),
			"routes": []any{map[string]any{"name": fmt.Sprintf("route-%05d", i), "paths": []any{fmt.Sprintf("/svc-%05d", i)}}}}
		consumers[i] = map[string]any{"username": fmt.Sprintf("user-%05d", i), "custom_id": fmt.Sprintf("c-%05d", i)}
	}
	raw, err := json.Marshal(map[string]any{"_format_version": "3.0", "services": services, "consumers": consumers})
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkImport imports a file of 10,000 services, 10,000 routes and 10,000 consumers into an
// empty group: parsing, validation, the plan and the one transaction that writes it, as POST
// …/declarative-config does. Each iteration imports into a new group.
//
//	go test ./internal/cp/declarative -run '^$' -bench BenchmarkImport -benchtime 1x
func BenchmarkImport(b *testing.B) {
	const n = 10000
	raw := largeFile(b, n)
	for _, dialect := range storetest.Dialects {
		b.Run(dialect, func(b *testing.B) {
			st := storetest.Open(b, dialect)
			ctx := context.Background()
			res, err := st.Bootstrap(ctx, store.BootstrapParams{OrgName: "o", Region: "us", AdminName: "a", AdminToken: store.Token{Hash: uuid.NewString(), Hint: "x"}})
			if err != nil {
				b.Fatal(err)
			}
			es := entitystore.New(st)
			ds, err := declarative.New(declarative.Options{Entities: es})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(raw)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				g := store.RuntimeGroup{ID: uuid.NewString(), OrgID: res.Org.ID, Region: "us", Name: fmt.Sprintf("bench-%d", i),
					ClusterType: res.Group.ClusterType, AuthType: res.Group.AuthType, CreatedAt: time.Now(), UpdatedAt: time.Now()}
				if err := st.CreateGroup(ctx, g); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				in, err := declarative.Parse("application/json", raw)
				if err != nil {
					b.Fatal(err)
				}
				out, err := ds.Import(ctx, g.ID, in, declarative.ImportOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if out.Summary["routes"].Created != n || out.Summary["consumers"].Created != n || out.Summary["services"].Created != n {
					b.Fatalf("summary %v", out.Summary)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/import")
		})
	}
}
