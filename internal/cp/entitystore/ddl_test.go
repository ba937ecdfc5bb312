package entitystore

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the entity migrations from the schemas")

// TestMigrationsMatchSchemas keeps the entity tables and the schemas in step: a schema change that
// needs a new column fails here until a migration carries it.
func TestMigrationsMatchSchemas(t *testing.T) {
	for _, d := range []string{"sqlite", "postgres"} {
		path := filepath.Join("..", "store", "sqlstore", "migrations", d, "0002_entities.sql")
		want := DDL(d)
		if *update {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if string(got) != want {
			t.Fatalf("%s differs from the schemas; run go test ./internal/cp/entitystore -run TestMigrationsMatchSchemas -update, and add a new migration rather than editing a released one", path)
		}
	}
}
