package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"strconv"
	"strings"

	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect holds what differs between the SQL databases the store runs on.
type dialect interface {
	name() string
	driver() string
	configure(db *sql.DB)
	rebind(q string) string
	// contains returns a case-sensitive substring test of column col against one placeholder.
	contains(col string) string
	lockMigrations(ctx context.Context, tx *sql.Tx) error
	forUpdate() string
	// classify maps a driver error to a *ConstraintError, or returns nil.
	classify(err error) error
}

type sqliteDialect struct{}

func (sqliteDialect) name() string   { return "sqlite" }
func (sqliteDialect) driver() string { return "sqlite" }

// configure keeps a small pool: SQLite has one writer at a time, and immediate transactions plus
// the busy timeout queue writers instead of failing them.
func (sqliteDialect) configure(db *sql.DB) {
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
}
func (sqliteDialect) rebind(q string) string     { return q }
func (sqliteDialect) contains(col string) string { return "instr(" + col + ", ?) > 0" }
func (sqliteDialect) lockMigrations(context.Context, *sql.Tx) error {
	return nil
}

func (sqliteDialect) classify(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return nil
	}
	msg := se.Error()
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return &ConstraintError{Kind: store.ErrConflict, Constraint: sqliteConstraintColumns(msg), Detail: msg}
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return &ConstraintError{Kind: store.ErrForeignKey, Detail: msg}
	}
	return nil
}

// sqliteConstraintColumns extracts "table.col, table.col2" from SQLite's UNIQUE message, which
// names columns rather than the index.
func sqliteConstraintColumns(msg string) string {
	const marker = "constraint failed: "
	if i := strings.Index(msg, marker); i >= 0 {
		rest := msg[i+len(marker):]
		if j := strings.Index(rest, " ("); j >= 0 {
			rest = rest[:j]
		}
		return rest
	}
	return ""
}

// sqliteDSN enables foreign keys and WAL on every connection and makes transactions take the write
// lock up front, so concurrent writers wait (busy_timeout) rather than deadlock on upgrade.
func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

type postgresDialect struct{}

func (postgresDialect) name() string   { return "postgres" }
func (postgresDialect) driver() string { return "pgx" }
func (postgresDialect) configure(db *sql.DB) {
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(8)
}

// rebind turns ? into $1, $2, …; the store's queries never hold ? inside string literals.
func (postgresDialect) rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}
func (postgresDialect) contains(col string) string { return "strpos(" + col + ", ?) > 0" }

// migrationLockKey is an arbitrary constant naming Gantry's migration advisory lock.
const migrationLockKey = 7_146_551_802

func (postgresDialect) lockMigrations(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey)
	return err
}

func (postgresDialect) classify(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return nil
	}
	switch pe.Code {
	case "23505":
		return &ConstraintError{Kind: store.ErrConflict, Constraint: pe.ConstraintName, Detail: pe.Message + ": " + pe.Detail}
	case "23503":
		return &ConstraintError{Kind: store.ErrForeignKey, Constraint: pe.ConstraintName, Detail: pe.Message + ": " + pe.Detail}
	}
	return nil
}

// forUpdate locks the selected row for the rest of the transaction where the database supports it;
// SQLite's immediate transactions already hold the write lock.
func (sqliteDialect) forUpdate() string   { return "" }
func (postgresDialect) forUpdate() string { return " FOR UPDATE" }
