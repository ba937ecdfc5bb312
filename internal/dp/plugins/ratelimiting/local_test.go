package ratelimiting

import (
	"context"
	"testing"
	"unsafe"
)

// TestLocalKeysOwnTheirIdentifier checks a counter survives the request
// memory its identifier was read from being reused for another client, as
// the runtime's pooled request contexts do: before the counters held
// pointers, a hit re-stored the lookup key (Go map assignment replaces a
// string key), so the map's key pointed into memory the next request
// overwrote and the client's counter was lost.
func TestLocalKeysOwnTheirIdentifier(t *testing.T) {
	s := newLocalStore()
	buf := []byte("10.0.0.1")
	reused := func() string { return unsafe.String(&buf[0], len(buf)) }
	id := reused
	var limits [numPeriods]int64
	limits[hour] = 10
	starts := periodStarts(fixed)
	check := func(want int64) {
		t.Helper()
		usage, stop, err := s.check(context.Background(), keyParts{route: "r", service: "s", id: id()}, limits, starts)
		if err != nil || stop >= 0 {
			t.Fatalf("check: stop %d, err %v", stop, err)
		}
		if usage[hour] != want {
			t.Fatalf("usage before this request = %d, want %d", usage[hour], want)
		}
	}
	check(0) // inserts a copy of the identifier
	check(1) // a hit
	copy(buf, "10.0.0.9")
	check(0) // another client in the same memory
	// The first client again, its identifier in other memory.
	id = func() string { return "10.0.0.1" }
	check(2)
	id = reused
	check(1)
}
