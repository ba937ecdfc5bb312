package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
)

// TestDataDirLock: a second store on the same SQLite directory is refused while the first is
// open, with a message that says what to do; closing the first frees the directory.
func TestDataDirLock(t *testing.T) {
	dir := t.TempDir()
	first, err := sqlstore.Open(context.Background(), sqlstore.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sqlstore.Open(context.Background(), sqlstore.Options{DataDir: dir})
	if err == nil || !strings.Contains(err.Error(), "in use by process") || !strings.Contains(err.Error(), "--database-url") {
		t.Fatalf("second open: %v, want refused naming the owner and --database-url", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := sqlstore.Open(context.Background(), sqlstore.Options{DataDir: dir})
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	_ = again.Close()
}

// TestExclusive: on PostgreSQL a job runs on one store (process) at a time and moves when the
// holder is done; on SQLite it always runs.
func TestExclusive(t *testing.T) {
	url := storetest.NewPostgresDatabase(t)
	open := func() *sqlstore.Store {
		s, err := sqlstore.Open(context.Background(), sqlstore.Options{DatabaseURL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := open(), open()
	ctx := context.Background()
	inside := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		ran, err := a.Exclusive(ctx, "purge", func(context.Context, *sql.Conn) error {
			close(inside)
			<-release
			return nil
		})
		if err == nil && !ran {
			err = errors.New("the first process did not run the job")
		}
		done <- err
	}()
	<-inside
	ran, err := b.Exclusive(ctx, "purge", func(context.Context, *sql.Conn) error { return nil })
	if err != nil || ran {
		t.Fatalf("second process while the first holds the job: ran %v err %v, want skipped", ran, err)
	}
	// Another job is not blocked by this one.
	if ran, err := b.Exclusive(ctx, "rollup", func(context.Context, *sql.Conn) error { return nil }); err != nil || !ran {
		t.Fatalf("another job: ran %v err %v", ran, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wantErr := errors.New("job failed")
	if ran, err := b.Exclusive(ctx, "purge", func(context.Context, *sql.Conn) error { return wantErr }); !ran || !errors.Is(err, wantErr) {
		t.Fatalf("after release: ran %v err %v, want ran with the job's error", ran, err)
	}
	// The failed job released its lock too.
	if ran, err := a.Exclusive(ctx, "purge", func(context.Context, *sql.Conn) error { return nil }); !ran || err != nil {
		t.Fatalf("after a failed run: ran %v err %v", ran, err)
	}

	lite := storetest.Open(t, "sqlite")
	var n atomic.Int32
	for range 2 {
		if ran, err := lite.Exclusive(ctx, "purge", func(context.Context, *sql.Conn) error { n.Add(1); return nil }); !ran || err != nil {
			t.Fatalf("sqlite: ran %v err %v", ran, err)
		}
	}
	if n.Load() != 2 {
		t.Fatalf("sqlite ran the job %d times, want 2", n.Load())
	}
}

// TestRevisionNotifications: an announcement made in a transaction reaches a listener of another
// store (process) when the transaction commits, and never when it rolls back; SQLite has none.
func TestRevisionNotifications(t *testing.T) {
	url := storetest.NewPostgresDatabase(t)
	open := func() *sqlstore.Store {
		s, err := sqlstore.Open(context.Background(), sqlstore.Options{DatabaseURL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	writer, reader := open(), open()
	type note struct {
		group string
		rev   int64
	}
	got := make(chan note, 16)
	listening := make(chan struct{}, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- reader.ListenRevisions(ctx, sqlstore.ListenOptions{
			OnRevision:  func(g string, rev int64) { got <- note{g, rev} },
			OnListening: func() { listening <- struct{}{} },
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ListenRevisions: %v", err)
		}
	})
	select {
	case <-listening:
	case <-time.After(10 * time.Second):
		t.Fatal("the listener never started")
	}
	notify := func(group string, rev int64, commit bool) {
		t.Helper()
		tx, err := writer.DB().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := writer.NotifyRevision(ctx, tx, group, rev); err != nil {
			t.Fatal(err)
		}
		if commit {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	notify("g-rolled-back", 7, false)
	notify("g1", 8, true)
	notify("g2", sqlstore.GroupDeletedRevision, true)
	for _, want := range []note{{"g1", 8}, {"g2", -1}} {
		select {
		case n := <-got:
			if n != want {
				t.Fatalf("notification %+v, want %+v (a rolled-back one must never arrive)", n, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no notification for %+v", want)
		}
	}

	// A listener whose connection dies listens again (and says so, for the caller to catch up).
	if _, err := writer.DB().ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-listening:
	case <-time.After(15 * time.Second):
		t.Fatal("the listener did not listen again after its connection was terminated")
	}
	notify("g3", 9, true)
	select {
	case n := <-got:
		if n != (note{"g3", 9}) {
			t.Fatalf("after reconnect: %+v", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification after reconnect")
	}

	lite := storetest.Open(t, "sqlite")
	if err := lite.ListenRevisions(ctx, sqlstore.ListenOptions{}); !errors.Is(err, sqlstore.ErrNoNotifications) {
		t.Fatalf("sqlite ListenRevisions: %v, want ErrNoNotifications", err)
	}
}
