package server

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
)

// TestGracefulShutdown stops the server while a request is half sent: the request still completes,
// Run returns cleanly, and what it wrote is in the database.
func TestGracefulShutdown(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			so := storetest.Options(t, dialect)
			const token = "gpat_gracefulshutdowntesttoken"
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			addrc := make(chan net.Addr, 1)
			done := make(chan error, 1)
			go func() {
				done <- Run(ctx, Options{Listen: "127.0.0.1:0", DataDir: so.DataDir, DatabaseURL: so.DatabaseURL, Region: "us",
					AdminToken: token, ShutdownTimeout: 10 * time.Second, Ready: func(a net.Addr) { addrc <- a }})
			}()
			var addr net.Addr
			select {
			case addr = <-addrc:
			case err := <-done:
				t.Fatalf("Run: %v", err)
			}
			conn, err := net.Dial("tcp", addr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			body := `{"name":"in-flight"}`
			if _, err := fmt.Fprintf(conn, "POST /v2/runtime-groups HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", token, len(body), body[:5]); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond) // the server is now reading the body
			cancel()
			time.Sleep(200 * time.Millisecond) // shutdown has begun and must wait for us
			if _, err := net.DialTimeout("tcp", addr.String(), time.Second); err == nil {
				t.Fatal("the server still accepts new connections after the stop signal")
			}
			if _, err := fmt.Fprint(conn, body[5:]); err != nil {
				t.Fatalf("in-flight request cut off: %v", err)
			}
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("in-flight request lost: %v", err)
			}
			res.Body.Close()
			if res.StatusCode != 201 {
				t.Fatalf("in-flight request answered %d", res.StatusCode)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run after shutdown: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("Run did not return")
			}
			s, err := sqlstore.Open(context.Background(), so)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var org string
			if err := s.DB().QueryRow(`SELECT org_id FROM bootstrap`).Scan(&org); err != nil {
				t.Fatal(err)
			}
			gs, _, err := s.ListGroups(context.Background(), store.GroupQuery{OrgID: org, Region: "us", PageSize: 10, Sort: "name"})
			if err != nil || len(gs) != 2 || !strings.Contains(gs[1].Name+gs[0].Name, "in-flight") {
				t.Fatalf("groups after shutdown: %v %v", gs, err)
			}
		})
	}
}
