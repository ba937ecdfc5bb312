package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// ErrUnavailable means the database could not be reached, or the connection to it broke while
// the operation ran: nothing is known to have been written, and the same request may succeed
// once the database is back. The HTTP layer answers 503 for it.
var ErrUnavailable = errors.New("database unavailable")

// Unavailable reports whether err says the database could not be reached or the connection to it
// broke, as opposed to a query the database refused. It knows database/sql's and the network's
// errors and PostgreSQL's SQLSTATE classes 08 (connection exception) and 57P0x (the server is
// shutting down or cannot accept connections), read through the SQLState method of the driver's
// error so that callers need no driver import.
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// context.DeadlineExceeded is a net.Error too, but says the caller gave up, not why.
		return false
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var state interface{ SQLState() string }
	if errors.As(err, &state) {
		s := state.SQLState()
		return strings.HasPrefix(s, "08") || strings.HasPrefix(s, "57P0")
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	// pgx reports a connection it closed after a failure with this message and no type.
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "failed to connect to")
}
