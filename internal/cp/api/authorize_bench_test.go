package api

import (
	"context"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/google/uuid"
)

// BenchmarkAuthorize measures what authorization adds to one Admin API request: the authorize
// middleware around a handler that does nothing, for a Route Admin creating a route. "cached" is
// the common case (grants read within the last GrantsTTL); "reload" reads them from SQLite on
// every request; "none" is the same request routed without authorization, the baseline the
// other two are compared with.
func BenchmarkAuthorize(b *testing.B) {
	s := storetest.Open(b, "sqlite")
	ctx := context.Background()
	res, err := s.Bootstrap(ctx, store.BootstrapParams{OrgName: "Acme", Region: "us", AdminName: "admin", AdminToken: store.Token{Name: "t", Hash: uuid.NewString(), Hint: "x"}})
	if err != nil {
		b.Fatal(err)
	}
	user, group := uuid.NewString(), uuid.NewString()
	if err := s.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO users (id, org_id, name, role, created_at) VALUES (?, ?, 'u', '', 0)`, user, res.Org.ID)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	if err := s.CreateGroupWithAdmin(ctx, store.RuntimeGroup{ID: group, OrgID: res.Org.ID, Region: "us", Name: "g", ClusterType: "CLUSTER_TYPE_HYBRID", AuthType: "pinned_client_certs", CreatedAt: now, UpdatedAt: now},
		store.RoleAssignment{ID: uuid.NewString(), OrgID: res.Org.ID, SubjectType: store.SubjectUser, SubjectID: user, RoleName: "Route Admin", EntityTypeName: "Runtime Groups", EntityID: group, EntityRegion: "us", CreatedAt: now}); err != nil {
		b.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		ttl  time.Duration
	}{{"none", 0}, {"cached", time.Hour}, {"reload", time.Nanosecond}} {
		b.Run(tt.name, func(b *testing.B) {
			a, err := New(Options{Store: s, Region: "us", GrantsTTL: tt.ttl})
			if err != nil {
				b.Fatal(err)
			}
			served := 0
			var h http.Handler = http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served++ })
			if tt.ttl > 0 { // "none" is the baseline: routing without authorization
				h = a.authorize("/v2/runtime-groups/{groupId}/core-entities/", h)
			}
			mux := http.NewServeMux()
			mux.Handle("/v2/runtime-groups/{groupId}/core-entities/", h)
			req := httptest.NewRequest("POST", "/v2/runtime-groups/"+group+"/core-entities/services/s1/routes", nil)
			req = req.WithContext(context.WithValue(req.Context(), principalKey{}, Principal{OrgID: res.Org.ID, UserID: user}))
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				mux.ServeHTTP(w, req)
			}
			if served != b.N {
				b.Fatalf("served %d of %d requests: %d %s", served, b.N, w.Code, w.Body)
			}
		})
	}
}
