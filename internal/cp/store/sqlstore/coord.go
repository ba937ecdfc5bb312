package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// This file holds what lets several control plane processes share one PostgreSQL database:
// revision announcements (LISTEN/NOTIFY) and jobs that run on one process at a time (advisory
// locks). On SQLite there is only ever one process (see lockDataDir), so announcements are not
// sent and every job runs.

// RevisionChannel is the PostgreSQL notification channel on which committed revisions are
// announced. A payload is "<group id> <revision>"; revision -1 means the group was deleted.
const RevisionChannel = "gantry_revisions"

// GroupDeletedRevision is the revision NotifyRevision announces for a deleted group.
const GroupDeletedRevision = -1

// NotifyRevision announces, inside tx, that the group's revision is now rev (or that the group
// was deleted, with GroupDeletedRevision). PostgreSQL delivers the announcement when tx commits,
// and never if it rolls back; on SQLite it does nothing.
func (s *Store) NotifyRevision(ctx context.Context, tx *sql.Tx, groupID string, rev int64) error {
	if s.dialect.name() != "postgres" {
		return nil
	}
	_, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, RevisionChannel, groupID+" "+strconv.FormatInt(rev, 10))
	return err
}

// grantsPayload is the announcement, on RevisionChannel, that some identity's roles, teams or
// memberships changed. It cannot be mistaken for a revision: it has no space.
const grantsPayload = "grants"

// NotifyGrants announces, inside tx, that roles, teams or team memberships changed, so that every
// control plane process reads the grants it cached again. Like NotifyRevision, it is delivered
// when tx commits and does nothing on SQLite, whose single process learns of its own changes.
func (s *Store) NotifyGrants(ctx context.Context, tx *sql.Tx) error {
	if s.dialect.name() != "postgres" {
		return nil
	}
	_, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, RevisionChannel, grantsPayload)
	return err
}

// ListenOptions configure ListenRevisions.
type ListenOptions struct {
	// OnRevision is called, on the listener's goroutine, for each announcement (this process's
	// own included). It must not block.
	OnRevision func(groupID string, rev int64)
	// OnGrants is called, on the listener's goroutine, for each NotifyGrants announcement, and
	// each time the listener (re)starts, since announcements made meanwhile are lost. It must not
	// block.
	OnGrants func()
	// OnListening is called each time the listener (re)starts listening: announcements made
	// while it was not listening are lost, so the caller catches up (reads the revisions it
	// cares about) then. It must not block.
	OnListening func()
	// Retry bounds the delay between reconnect attempts (doubling from a second); defaults to
	// 10 s.
	Retry time.Duration
}

// ErrNoNotifications is returned by ListenRevisions on a database without notifications
// (SQLite).
var ErrNoNotifications = errors.New("the database has no notifications")

// ListenRevisions listens on RevisionChannel over a connection of its own until ctx ends, and
// reconnects after any failure. It returns nil when ctx ends, or ErrNoNotifications at once on
// SQLite.
func (s *Store) ListenRevisions(ctx context.Context, opts ListenOptions) error {
	if s.dialect.name() != "postgres" {
		return ErrNoNotifications
	}
	if opts.Retry <= 0 {
		opts.Retry = 10 * time.Second
	}
	delay := time.Second
	for {
		err := s.listenOnce(ctx, opts)
		if ctx.Err() != nil {
			return nil //nolint:nilerr // a cancelled ctx is a clean stop; the error is its consequence
		}
		s.log.Warn("revision notifications interrupted; changes made through other control plane processes arrive by the poll until they resume",
			"err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(2*delay, opts.Retry)
	}
}

func (s *Store) listenOnce(ctx context.Context, opts ListenOptions) error {
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	conn, err := pgx.Connect(cctx, s.dsn)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = conn.Close(cctx) // the connection is done either way
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+RevisionChannel); err != nil {
		return err
	}
	if opts.OnListening != nil {
		opts.OnListening()
	}
	if opts.OnGrants != nil {
		opts.OnGrants()
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Payload == grantsPayload {
			if opts.OnGrants != nil {
				opts.OnGrants()
			}
			continue
		}
		group, revText, ok := strings.Cut(n.Payload, " ")
		rev, perr := strconv.ParseInt(revText, 10, 64)
		if !ok || perr != nil {
			s.log.Warn("ignoring a malformed revision notification", "payload", n.Payload)
			continue
		}
		if opts.OnRevision != nil {
			opts.OnRevision(group, rev)
		}
	}
}

// Exclusive runs fn unless another control plane process sharing the database is running the
// job of the same name, and reports whether it ran. On PostgreSQL a session advisory lock on the
// connection given to fn decides: it is released when fn returns, or when the process dies and
// its connection closes, so the job moves to another process. On SQLite fn always runs.
func (s *Store) Exclusive(ctx context.Context, job string, fn func(ctx context.Context, conn *sql.Conn) error) (bool, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return false, fmt.Errorf("%s: %w", job, err)
	}
	defer func() { _ = conn.Close() }()
	if s.dialect.name() == "postgres" {
		key := jobLockKey(job)
		var got bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
			return false, fmt.Errorf("%s: lock: %w", job, err)
		}
		if !got {
			return false, nil
		}
		defer func() {
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if _, err := conn.ExecContext(uctx, `SELECT pg_advisory_unlock($1)`, key); err != nil {
				// The lock dies with the connection: make sure the pool does not keep it.
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
				s.log.Warn("job unlock failed; dropping its connection", "job", job, "err", err)
			}
		}()
	}
	return true, fn(ctx, conn)
}

// jobLockKey names a job's advisory lock: a hash of its name in the key space PostgreSQL's
// bigint locks share with the migration lock, which is a small constant and cannot collide with
// the high bit set here.
func jobLockKey(job string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("gantry job " + job))
	return int64(h.Sum64() | 1<<62)
}
