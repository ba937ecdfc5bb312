// Package sqlstore implements store.Store on SQL databases: embedded SQLite (modernc.org/sqlite,
// pure Go, WAL mode) and PostgreSQL (pgx). Both share the queries in this package; what differs
// between them (driver, placeholders, error codes, migrations) lives in a dialect value.
package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations
var migrationsFS embed.FS

// Options configure Open. Exactly one of DatabaseURL and DataDir is used: a postgres:// URL
// selects PostgreSQL; otherwise the SQLite file gantry.db inside DataDir (created if missing).
type Options struct {
	// DatabaseURL is a postgres:// URL; empty selects SQLite.
	DatabaseURL string
	// DataDir holds the SQLite file when DatabaseURL is empty.
	DataDir string
	// Logger receives the store's messages; nil discards them.
	Logger *slog.Logger
}

// Store is the SQL implementation of store.Store.
type Store struct {
	db      *sql.DB
	dialect dialect
	log     *slog.Logger
	// dsn is the PostgreSQL URL, for connections of their own (ListenRevisions).
	dsn string
	// dirLock holds the SQLite data directory for this process; nil on PostgreSQL.
	dirLock *dirLock
}

// Open connects, applies pending migrations and returns a ready store.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	var d dialect
	var dsn string
	switch {
	case strings.HasPrefix(opts.DatabaseURL, "postgres://"), strings.HasPrefix(opts.DatabaseURL, "postgresql://"):
		d, dsn = postgresDialect{}, opts.DatabaseURL
	case opts.DatabaseURL != "":
		return nil, fmt.Errorf("unsupported database URL %q: use postgres://user@host:5432/db, or omit it to use SQLite in the data directory", redactURL(opts.DatabaseURL))
	default:
		if opts.DataDir == "" {
			return nil, errors.New("sqlstore: DataDir is required when no DatabaseURL is given")
		}
		if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
		d, dsn = sqliteDialect{}, sqliteDSN(filepath.Join(opts.DataDir, "gantry.db"))
	}
	var lock *dirLock
	if d.name() == "sqlite" {
		// SQLite serves one control plane process: a second one would not see the first one's
		// changes reach its instances, nor share its jobs.
		var err error
		if lock, err = lockDataDir(opts.DataDir); err != nil {
			return nil, err
		}
	}
	db, err := sql.Open(d.driver(), dsn)
	if err != nil {
		lock.release()
		return nil, fmt.Errorf("open %s database: %w", d.name(), err)
	}
	d.configure(db)
	s := &Store{db: db, dialect: d, log: opts.Logger.With("component", "store", "dialect", d.name()), dirLock: lock}
	if d.name() == "postgres" {
		s.dsn = dsn
	}
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("connect to %s database: %w", d.name(), err)
	}
	if err := s.migrate(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// DB exposes the underlying pool for packages that own further tables in the same database.
func (s *Store) DB() *sql.DB { return s.db }

// Dialect implements store.Store.
func (s *Store) Dialect() string { return s.dialect.name() }

// Close implements store.Store.
func (s *Store) Close() error {
	err := s.db.Close()
	s.dirLock.release()
	return err
}

// Rebind rewrites a query written with ? placeholders for the store's dialect.
func (s *Store) Rebind(q string) string { return s.dialect.rebind(q) }

// migrations returns the embedded migrations of the dialect sorted by version.
func (s *Store) migrations() ([]migration, error) {
	dir := "migrations/" + s.dialect.name()
	entries, err := fs.ReadDir(migrationsFS, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".sql") {
			continue
		}
		v, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a version number", name)
		}
		body, err := fs.ReadFile(migrationsFS, dir+"/"+name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

type migration struct {
	version int
	name    string
	sql     string
}

// migrate applies pending migrations, each in its own transaction. On PostgreSQL an advisory lock
// serializes processes that start together; on SQLite the immediate transaction does.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := s.migrations()
	if err != nil {
		return fmt.Errorf("read migrations: %w", err)
	}
	for _, m := range ms {
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			if err := s.dialect.lockMigrations(ctx, tx); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
				return fmt.Errorf("create schema_migrations: %w", err)
			}
			var n int
			if err := tx.QueryRowContext(ctx, s.Rebind(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), m.version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, s.Rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`), m.version, m.name, toDB(time.Now()))
			if err == nil {
				s.log.Info("applied migration", "version", m.version, "name", m.name)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %s: %w", m.name, err)
		}
	}
	return nil
}

// Ready implements store.Store.
func (s *Store) Ready(ctx context.Context) error {
	ms, err := s.migrations()
	if err != nil {
		return err
	}
	var applied int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&applied); err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	if applied < len(ms) {
		return fmt.Errorf("%d of %d migrations applied", applied, len(ms))
	}
	return nil
}

// inTx runs fn in a transaction and maps driver errors to the store's sentinel errors.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.mapErr(fmt.Errorf("begin transaction: %w", err))
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // fn's error is the one to report
		return s.mapErr(err)
	}
	if err := tx.Commit(); err != nil {
		return s.mapErr(fmt.Errorf("commit: %w", err))
	}
	return nil
}

// InTx runs fn in one transaction of the store; other packages use it for their own tables.
func (s *Store) InTx(ctx context.Context, fn func(tx *sql.Tx) error) error { return s.inTx(ctx, fn) }

// ConstraintError describes a violated database constraint. It wraps store.ErrConflict or
// store.ErrForeignKey.
type ConstraintError struct {
	Kind       error  // store.ErrConflict or store.ErrForeignKey
	Constraint string // constraint or index name when the database reports one
	Detail     string // the database's message
}

// Error implements error: the kind and the database's message.
func (e *ConstraintError) Error() string {
	return fmt.Sprintf("%v: %s", e.Kind, e.Detail)
}

// Unwrap returns Kind, so that errors.Is matches store.ErrConflict or store.ErrForeignKey.
func (e *ConstraintError) Unwrap() error { return e.Kind }

func (s *Store) mapErr(err error) error {
	if err == nil {
		return nil
	}
	var ce *ConstraintError
	if errors.As(err, &ce) {
		return err
	}
	if mapped := s.dialect.classify(err); mapped != nil {
		return mapped
	}
	return err
}

func toDB(t time.Time) int64 { return t.UnixMicro() }

func fromDB(v int64) time.Time { return time.UnixMicro(v).UTC() }

func fromDBNull(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromDB(v.Int64)
	return &t
}

func toDBNull(t *time.Time) any {
	if t == nil {
		return nil
	}
	return toDB(*t)
}

// redactURL hides a password in a database URL before it reaches logs or errors.
func redactURL(u string) string {
	at := strings.LastIndex(u, "@")
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return u
	}
	cred := u[scheme+3 : at]
	if i := strings.Index(cred, ":"); i >= 0 {
		return u[:scheme+3] + cred[:i] + ":xxxxx" + u[at:]
	}
	return u
}

// Contains returns the dialect's case-sensitive substring test of col against one placeholder.
func (s *Store) Contains(col string) string { return s.dialect.contains(col) }

// ForUpdate returns the clause that locks selected rows for the transaction ("" on SQLite, whose
// immediate transactions already hold the write lock).
func (s *Store) ForUpdate() string { return s.dialect.forUpdate() }

// MapError maps a driver error to the store's sentinel errors (a *ConstraintError wrapping
// store.ErrConflict or store.ErrForeignKey), returning other errors unchanged.
func (s *Store) MapError(err error) error { return s.mapErr(err) }
