package entitystore

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
)

// TestMigrationsMatchSchemas applies every migration, in order, to an empty
// database of each dialect (storetest.Open runs the store's own migrate, as
// a fresh install does), checks that each migration file was applied, and
// compares the entity tables they leave with
// the tables the schemas require by the rule in ddl.go: each column with its
// type and nullability, the primary key, the unique constraints, the foreign
// keys with their ON DELETE action, and the indexes. Migrations are released
// once and never edited, so a schema change that needs different tables
// fails here, naming each missing or extra piece, until a new migration
// brings the tables in line.
func TestMigrationsMatchSchemas(t *testing.T) {
	want := requiredTables()
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := storetest.Open(t, dialect)
			got, err := inspectTables(context.Background(), s.DB(), dialect)
			if err != nil {
				t.Fatal(err)
			}
			help := migrationHelp(t, dialect)
			checkAllApplied(t, s.DB(), dialect)
			for _, name := range sortedKeys(want) {
				t.Run(name, func(t *testing.T) {
					g, ok := got[name]
					if !ok {
						t.Errorf("table %s is missing; the schemas require it:\n%s\n%s", name, tableDDL(dialect, name), help)
						return
					}
					if problems := diffTables(want[name], g); len(problems) > 0 {
						t.Errorf("table %s differs from what the schemas require:\n  %s\n%s", name, strings.Join(problems, "\n  "), help)
					}
				})
			}
			for _, name := range sortedKeys(got) {
				if _, ok := want[name]; !ok && looksLikeEntityTable(got[name]) {
					t.Errorf("table %s is an entity table (group_id, id, tags, doc) of no schema entity; drop it.\n%s", name, help)
				}
			}
		})
	}
}

// table is what the test compares of one table.
type table struct {
	// columns maps a column name to its type and nullability:
	// "text NOT NULL", "bigint NULL".
	columns map[string]string
	// constraints holds the primary key, unique constraints (and unique
	// indexes, which enforce the same), foreign keys and other indexes, each
	// as a canonical line: "PRIMARY KEY (group_id, id)", "UNIQUE (group_id,
	// u_name)", "FOREIGN KEY (group_id, service_id) REFERENCES services
	// (group_id, id) ON DELETE CASCADE", "INDEX (group_id, service_id)".
	constraints map[string]bool
}

func newTable() table { return table{columns: map[string]string{}, constraints: map[string]bool{}} }

func (t table) column(name, typ string, notNull bool) {
	null := "NULL"
	if notNull {
		null = "NOT NULL"
	}
	t.columns[name] = strings.ToLower(typ) + " " + null
}

func (t table) foreignKey(cols []string, parent string, parentCols []string, onDelete string) {
	t.constraints[fmt.Sprintf("FOREIGN KEY (%s) REFERENCES %s (%s) ON DELETE %s",
		strings.Join(cols, ", "), parent, strings.Join(parentCols, ", "), strings.ToUpper(onDelete))] = true
}

func (t table) index(kind string, cols ...string) {
	t.constraints[kind+" ("+strings.Join(cols, ", ")+")"] = true
}

// requiredTables returns the entity tables the schemas require, by the rule
// in ddl.go, and the consumer group membership table the store keeps beside
// them.
func requiredTables() map[string]table {
	out := make(map[string]table)
	for _, e := range schema.Entities() {
		t := newTable()
		t.column("group_id", "text", true)
		t.column("id", "text", true)
		t.column("tags", "text", false)
		t.column("doc", "text", true)
		t.index("PRIMARY KEY", "group_id", "id")
		t.foreignKey([]string{"group_id"}, "runtime_groups", []string{"id"}, "cascade")
		for _, f := range uniqueColumns(e) {
			t.column("u_"+f, "text", false)
			t.index("UNIQUE", "group_id", "u_"+f)
		}
		for i := range compositeKeys(e) {
			ck := fmt.Sprintf("ck_%d", i)
			t.column(ck, "text", true)
			t.index("UNIQUE", "group_id", ck)
		}
		for _, r := range e.Refs {
			col := r.Field + "_id"
			t.column(col, "text", false)
			action := "no action"
			if r.OnDelete == "cascade" {
				action = "cascade"
			}
			t.foreignKey([]string{"group_id", col}, r.Entity, []string{"group_id", "id"}, action)
			t.index("INDEX", "group_id", col)
		}
		out[e.Name] = t
	}
	m := newTable()
	m.column("group_id", "text", true)
	m.column("consumer_group_id", "text", true)
	m.column("consumer_id", "text", true)
	m.column("created_at", "bigint", true)
	m.index("PRIMARY KEY", "group_id", "consumer_group_id", "consumer_id")
	m.foreignKey([]string{"group_id"}, "runtime_groups", []string{"id"}, "cascade")
	m.foreignKey([]string{"group_id", "consumer_group_id"}, "consumer_groups", []string{"group_id", "id"}, "cascade")
	m.foreignKey([]string{"group_id", "consumer_id"}, "consumers", []string{"group_id", "id"}, "cascade")
	m.index("INDEX", "group_id", "consumer_id")
	out["consumer_group_consumers"] = m
	return out
}

// diffTables lists how got differs from want, one line per column or
// constraint.
func diffTables(want, got table) []string {
	var out []string
	for _, c := range sortedKeys(want.columns) {
		switch g, ok := got.columns[c]; {
		case !ok:
			out = append(out, fmt.Sprintf("missing column %s %s", c, want.columns[c]))
		case g != want.columns[c]:
			out = append(out, fmt.Sprintf("column %s is %s, want %s", c, g, want.columns[c]))
		}
	}
	for _, c := range sortedKeys(got.columns) {
		if _, ok := want.columns[c]; !ok {
			out = append(out, fmt.Sprintf("extra column %s %s", c, got.columns[c]))
		}
	}
	for _, c := range sortedKeys(want.constraints) {
		if !got.constraints[c] {
			out = append(out, "missing "+c)
		}
	}
	for _, c := range sortedKeys(got.constraints) {
		if !want.constraints[c] {
			out = append(out, "extra "+c)
		}
	}
	return out
}

// looksLikeEntityTable reports whether t has the columns every entity
// table has.
func looksLikeEntityTable(t table) bool {
	for _, c := range []string{"group_id", "id", "tags", "doc"} {
		if _, ok := t.columns[c]; !ok {
			return false
		}
	}
	return true
}

// migrationsDir is where the store's migrations of a dialect live,
// relative to this package and to the repository root.
func migrationsDir(dialect string) (fromHere, fromRoot string) {
	return filepath.Join("..", "store", "sqlstore", "migrations", dialect),
		filepath.Join("internal", "cp", "store", "sqlstore", "migrations", dialect)
}

// migrationVersions returns the versions of the migration files of a
// dialect.
func migrationVersions(t *testing.T, dialect string) []int {
	t.Helper()
	dir, _ := migrationsDir(dialect)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		var n int
		if _, err := fmt.Sscanf(e.Name(), "%d_", &n); err == nil {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}

// checkAllApplied fails when a migration file was not applied (a name the
// store does not take as a migration, say), since the comparison would not
// have seen it.
func checkAllApplied(t *testing.T, db *sql.DB, dialect string) {
	t.Helper()
	var applied []int
	err := queryRows(context.Background(), db, `SELECT version FROM schema_migrations ORDER BY version`, nil, func(v []sql.NullString) {
		n, _ := strconv.Atoi(v[0].String)
		applied = append(applied, n)
	})
	if err != nil {
		t.Fatal(err)
	}
	if files := migrationVersions(t, dialect); !slices.Equal(applied, files) {
		t.Errorf("migration versions applied %v, files %v: every migration must be a <version>_<name>.sql file and be applied", applied, files)
	}
}

// migrationHelp tells the developer what to do about a difference.
func migrationHelp(t *testing.T, dialect string) string {
	t.Helper()
	next := 1
	if vs := migrationVersions(t, dialect); len(vs) > 0 {
		next = vs[len(vs)-1] + 1
	}
	_, dir := migrationsDir(dialect)
	return fmt.Sprintf("The migrations applied in order must leave the tables the schemas require (the rule in ddl.go). "+
		"Add a new migration, %s/%04d_<what>.sql (and its twin for the other dialect), that makes this change; "+
		"do not edit a migration that is already released.", dir, next)
}

// tableDDL returns the statements DDL generates for one table, as a
// starting point for a new migration.
func tableDDL(dialect, name string) string {
	all := DDL(dialect)
	start := strings.Index(all, "CREATE TABLE "+q(name)+" (")
	if start < 0 {
		start = strings.Index(all, "CREATE TABLE "+name+" (")
	}
	if start < 0 {
		return "(no DDL generated for it)"
	}
	rest := all[start:]
	if end := strings.Index(rest, "\n\n"); end >= 0 {
		rest = rest[:end]
	}
	return rest
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// inspectTables reads the tables of the database from its catalogue.
func inspectTables(ctx context.Context, db *sql.DB, dialect string) (map[string]table, error) {
	if dialect == "postgres" {
		return inspectPostgres(ctx, db)
	}
	return inspectSQLite(ctx, db)
}

// queryRows runs q and hands each row to fn, every column as a string.
func queryRows(ctx context.Context, db *sql.DB, q string, args []any, fn func(vals []sql.NullString)) (err error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", q, err)
	}
	defer func() {
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
	}()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		fn(vals)
	}
	return rows.Err()
}

func inspectSQLite(ctx context.Context, db *sql.DB) (map[string]table, error) {
	var names []string
	err := queryRows(ctx, db, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`, nil,
		func(v []sql.NullString) { names = append(names, v[0].String) })
	if err != nil {
		return nil, err
	}
	out := make(map[string]table, len(names))
	for _, name := range names {
		t := newTable()
		// pk is a column's position in the primary key, from 1; 0 when
		// not part of it.
		pkCols := map[int]string{}
		err := queryRows(ctx, db, `SELECT name, type, "notnull", pk FROM pragma_table_info(?)`, []any{name}, func(v []sql.NullString) {
			t.column(v[0].String, v[1].String, v[2].String == "1")
			if n, _ := strconv.Atoi(v[3].String); n > 0 {
				pkCols[n] = v[0].String
			}
		})
		if err != nil {
			return nil, err
		}
		if len(pkCols) > 0 {
			cols := make([]string, len(pkCols))
			for n, c := range pkCols {
				cols[n-1] = c
			}
			t.index("PRIMARY KEY", cols...)
		}
		// Unique constraints and indexes; the primary key's is above.
		type index struct{ name, unique string }
		var indexes []index
		err = queryRows(ctx, db, `SELECT name, "unique", origin FROM pragma_index_list(?)`, []any{name}, func(v []sql.NullString) {
			if v[2].String != "pk" {
				indexes = append(indexes, index{v[0].String, v[1].String})
			}
		})
		if err != nil {
			return nil, err
		}
		for _, ix := range indexes {
			var cols []string
			err := queryRows(ctx, db, `SELECT name FROM pragma_index_info(?) ORDER BY seqno`, []any{ix.name},
				func(v []sql.NullString) { cols = append(cols, v[0].String) })
			if err != nil {
				return nil, err
			}
			kind := "INDEX"
			if ix.unique == "1" {
				kind = "UNIQUE"
			}
			t.index(kind, cols...)
		}
		// Foreign keys, one row per column, grouped by id.
		type fk struct {
			parent, onDelete string
			cols, parentCols []string
		}
		fks := map[string]*fk{}
		err = queryRows(ctx, db, `SELECT id, "table", "from", "to", on_delete FROM pragma_foreign_key_list(?) ORDER BY id, seq`, []any{name}, func(v []sql.NullString) {
			f := fks[v[0].String]
			if f == nil {
				f = &fk{parent: v[1].String, onDelete: v[4].String}
				fks[v[0].String] = f
			}
			f.cols = append(f.cols, v[2].String)
			f.parentCols = append(f.parentCols, v[3].String)
		})
		if err != nil {
			return nil, err
		}
		for _, f := range fks {
			t.foreignKey(f.cols, f.parent, f.parentCols, f.onDelete)
		}
		out[name] = t
	}
	return out, nil
}

// postgresDeleteActions names pg_constraint.confdeltype codes.
var postgresDeleteActions = map[string]string{"a": "no action", "r": "restrict", "c": "cascade", "n": "set null", "d": "set default"}

func inspectPostgres(ctx context.Context, db *sql.DB) (map[string]table, error) {
	out := map[string]table{}
	err := queryRows(ctx, db, `SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns
		WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`, nil, func(v []sql.NullString) {
		t, ok := out[v[0].String]
		if !ok {
			t = newTable()
			out[v[0].String] = t
		}
		t.column(v[1].String, v[2].String, v[3].String == "NO")
	})
	if err != nil {
		return nil, err
	}
	// Column names of an attribute number list, in order.
	const cols = `array_to_string(ARRAY(SELECT a.attname FROM unnest(%s) WITH ORDINALITY k(n, o)
		JOIN pg_attribute a ON a.attrelid = %s AND a.attnum = k.n ORDER BY k.o), ',')`
	err = queryRows(ctx, db, `SELECT t.relname, i.indisprimary, i.indisunique, `+fmt.Sprintf(cols, "i.indkey::int2[]", "i.indrelid")+`
		FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
		WHERE t.relnamespace = current_schema()::regnamespace AND t.relkind = 'r'`, nil, func(v []sql.NullString) {
		t, ok := out[v[0].String]
		if !ok {
			return
		}
		kind := "INDEX"
		switch {
		case v[1].String == "true":
			kind = "PRIMARY KEY"
		case v[2].String == "true":
			kind = "UNIQUE"
		}
		t.index(kind, strings.Split(v[3].String, ",")...)
	})
	if err != nil {
		return nil, err
	}
	err = queryRows(ctx, db, `SELECT t.relname, p.relname, c.confdeltype, `+
		fmt.Sprintf(cols, "c.conkey", "c.conrelid")+`, `+fmt.Sprintf(cols, "c.confkey", "c.confrelid")+`
		FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class p ON p.oid = c.confrelid
		WHERE c.contype = 'f' AND t.relnamespace = current_schema()::regnamespace`, nil, func(v []sql.NullString) {
		t, ok := out[v[0].String]
		if !ok {
			return
		}
		action, ok := postgresDeleteActions[v[2].String]
		if !ok {
			action = "unknown action " + v[2].String
		}
		t.foreignKey(strings.Split(v[3].String, ","), v[1].String, strings.Split(v[4].String, ","), action)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
