package ratelimiting

import (
	"context"
	"hash/maphash"
	"strings"
	"sync"
)

const localShards = 32

// localStore is the `local` policy: in-process counters shared by every
// rate-limiting instance (as Kong's shared dictionary is), kept across
// configuration swaps through the plugin state registry.
type localStore struct {
	seed   maphash.Seed
	shards [localShards]localShard
}

type localKey struct {
	keyParts
	period period
	start  int64
}

type localShard struct {
	mu sync.Mutex // guards counts and lastSweep
	// counts hold pointers so a hit increments in place: assigning to an
	// existing key would also replace the stored key with the lookup key,
	// whose id may live in request-scoped memory that is rewritten later.
	counts    map[localKey]*int64
	lastSweep int64 // unix ms
}

func newLocalStore() *localStore {
	s := &localStore{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].counts = make(map[localKey]*int64)
	}
	return s
}

// check reads and counts under one lock, so concurrent requests of one
// identifier never both take the last slot.
func (s *localStore) check(_ context.Context, k keyParts, limits, starts [numPeriods]int64) ([numPeriods]int64, period, error) {
	var usage [numPeriods]int64
	stop := period(-1)
	sh := &s.shards[maphash.String(s.seed, k.id)%localShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	nowMs := starts[second]
	if nowMs-sh.lastSweep > 1000 {
		sh.sweep(nowMs)
	}
	lk := localKey{keyParts: k}
	for p := second; p < numPeriods; p++ {
		if limits[p] == 0 {
			continue
		}
		lk.period, lk.start = p, starts[p]
		if n := sh.counts[lk]; n != nil {
			usage[p] = *n
		}
		if limits[p]-usage[p] <= 0 {
			stop = p
		}
	}
	if stop >= 0 {
		return usage, stop, nil
	}
	for p := second; p < numPeriods; p++ {
		if limits[p] == 0 {
			continue
		}
		lk.period, lk.start = p, starts[p]
		if n := sh.counts[lk]; n != nil {
			*n++
			continue
		}
		// The identifier may live in request-scoped memory; the map keeps
		// its own copy.
		nk := lk
		nk.id = strings.Clone(lk.id)
		one := int64(1)
		sh.counts[nk] = &one
	}
	return usage, stop, nil
}

// sweep drops counters of windows that have ended.
func (sh *localShard) sweep(nowMs int64) {
	sh.lastSweep = nowMs
	for k := range sh.counts {
		end := k.start + windows[k.period]*1000
		if k.period == month || k.period == year {
			// Calendar periods: keep until the next one certainly began.
			end = k.start + (windows[k.period]+31*86400)*1000
		}
		if end <= nowMs {
			delete(sh.counts, k)
		}
	}
}
