// Package storetest opens real stores for tests: an SQLite file in a temporary directory and a
// fresh PostgreSQL database on the server named by GANTRY_TEST_POSTGRES_URL (default: the local
// server, user postgres). Tests that use it run the same cases against both databases.
package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver for creating test databases
)

// DefaultPostgresURL is the server used when GANTRY_TEST_POSTGRES_URL is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Dialects lists the databases every store test runs on.
var Dialects = []string{"sqlite", "postgres"}

// PostgresServerURL returns the administrative URL of the PostgreSQL server used by tests.
func PostgresServerURL() string {
	if u := os.Getenv("GANTRY_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// NewPostgresDatabase creates an empty database on the test server, drops it when t ends, and
// returns its URL. A server that cannot be reached fails the test: PostgreSQL is part of the test
// environment (.ci/run starts it), not optional.
func NewPostgresDatabase(t testing.TB) string {
	t.Helper()
	admin := PostgresServerURL()
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("open postgres %s: %v", admin, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	name := "gantry_test_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		_ = db.Close()
		t.Fatalf("create test database on %s (is PostgreSQL running? .ci/run starts it): %v", admin, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
		_ = db.Close()
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("parse %s: %v", admin, err)
	}
	u.Path = "/" + name
	return u.String()
}

// Open returns a migrated store of the given dialect, closed when t ends.
func Open(t testing.TB, dialect string) *sqlstore.Store {
	t.Helper()
	opts := Options(t, dialect)
	s, err := sqlstore.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("open %s store: %v", dialect, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Options returns store options for a fresh, empty database of the dialect.
func Options(t testing.TB, dialect string) sqlstore.Options {
	t.Helper()
	switch dialect {
	case "sqlite":
		return sqlstore.Options{DataDir: t.TempDir()}
	case "postgres":
		return sqlstore.Options{DatabaseURL: NewPostgresDatabase(t)}
	}
	panic(fmt.Sprintf("unknown dialect %q", dialect))
}

// Each runs fn once per dialect in a subtest named after it, with a fresh store.
func Each(t *testing.T, fn func(t *testing.T, s *sqlstore.Store)) {
	for _, d := range Dialects {
		t.Run(d, func(t *testing.T) { fn(t, Open(t, d)) })
	}
}
