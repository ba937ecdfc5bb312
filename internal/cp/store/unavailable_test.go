package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
)

type sqlStateErr string

func (e sqlStateErr) Error() string    { return "database error " + string(e) }
func (e sqlStateErr) SQLState() string { return string(e) }

func TestUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"not found", fmt.Errorf("group: %w", ErrNotFound), false},
		{"conflict", ErrConflict, false},
		{"context cancelled", context.Canceled, false},
		{"deadline exceeded (a net.Error too)", fmt.Errorf("query: %w", context.DeadlineExceeded), false},
		{"unique violation 23505", sqlStateErr("23505"), false},
		{"syntax error 42601", sqlStateErr("42601"), false},
		{"bad conn", driver.ErrBadConn, true},
		{"conn done", sql.ErrConnDone, true},
		{"unexpected EOF", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"reset", fmt.Errorf("query: %w", syscall.ECONNRESET), true},
		{"connection exception 08006", sqlStateErr("08006"), true},
		{"admin shutdown 57P01", sqlStateErr("57P01"), true},
		{"cannot connect now 57P03", sqlStateErr("57P03"), true},
		{"query canceled 57014", sqlStateErr("57014"), false},
		{"pgx closed conn", errors.New("conn closed"), true},
		{"pgx connect", errors.New("failed to connect to `user=postgres database=gantry`: dial error"), true},
		{"wrapped sentinel", fmt.Errorf("x: %w", ErrUnavailable), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Unavailable(tc.err); got != tc.want {
				t.Errorf("Unavailable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
