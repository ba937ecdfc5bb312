package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strings"
)

// smallBucket is the largest candidate list scanned linearly; bigger ones
// get a map keyed by path prefix. Scanning a few entries is cheaper than
// hashing several prefixes of the request path.
const smallBucket = 8

// Options configures Build.
type Options[T any] struct {
	// Routes are the routes of one configuration. The slice is not retained,
	// but the router keeps its own copy of each Route.
	Routes []Route[T]
}

// Router is a compiled, immutable set of routes. The zero value matches
// nothing; use Build.
type Router[T any] struct {
	routes []Route[T] // the router's own copies, referenced by Match.Route

	exact    map[string]*bucket[T] // by host without port
	suffix   map[string]*bucket[T] // "*.x.y" routes by ".x.y"
	prefix   map[string]*bucket[T] // "x.*" routes by "x."
	hostless *bucket[T]            // routes without hosts

	subRoutes int
}

// bucket holds the sub-routes reachable through one host key, indexed by a
// literal prefix every matching path must start with ("" when there is
// none, e.g. for routes without paths).
type bucket[T any] struct {
	// entries is sorted by rank and scanned when the bucket is small.
	entries []entry[T]
	// byKey and lengths replace entries for large buckets: byKey maps a
	// literal prefix to its sub-routes sorted by rank, lengths holds the
	// distinct prefix lengths in ascending order.
	byKey   map[string][]*subRoute[T]
	lengths []int
}

type entry[T any] struct {
	key string
	sr  *subRoute[T]
}

// Len reports the number of sub-routes (matchers) in the router: one per
// path group of each route.
func (r *Router[T]) Len() int { return r.subRoutes }

// Build compiles routes into a Router. A route that cannot be compiled (bad
// UUID, bad regex, bad host) is left out and reported in the returned
// RouteErrors; the other routes are still routed. The error is non-nil only
// when ctx ends first.
func Build[T any](ctx context.Context, opts Options[T]) (*Router[T], []*RouteError, error) {
	r := &Router[T]{
		routes: make([]Route[T], len(opts.Routes)),
		exact:  make(map[string]*bucket[T]),
		suffix: make(map[string]*bucket[T]),
		prefix: make(map[string]*bucket[T]),
	}
	copy(r.routes, opts.Routes)

	var errs []*RouteError
	var subs []*subRoute[T]
	regexCache := make(map[string]*regexp.Regexp)
	for i := range r.routes {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, errs, fmt.Errorf("build router: %w", err)
			}
		}
		rt := &r.routes[i]
		srs, err := compileRoute(rt, regexCache)
		if err != nil {
			errs = append(errs, &RouteError{ID: rt.ID, Err: err})
			continue
		}
		subs = append(subs, srs...)
	}

	// Rank sub-routes in the order the ATC router evaluates them:
	// descending priority, then descending UUID.
	sort.Slice(subs, func(i, j int) bool {
		a, b := subs[i], subs[j]
		if a.priority != b.priority {
			return a.priority > b.priority
		}
		return bytes.Compare(a.uuid[:], b.uuid[:]) > 0
	})
	if len(subs) > math.MaxInt32 {
		return nil, errs, errors.New("build router: too many routes")
	}
	for i, s := range subs {
		s.rank = int32(i)
	}
	r.subRoutes = len(subs)

	// Subs are visited in rank order, so each bucket's entries come out
	// sorted without another sort.
	for _, s := range subs {
		keys := s.pathKeys()
		if !s.cr.hostSet {
			if r.hostless == nil {
				r.hostless = &bucket[T]{}
			}
			r.hostless.add(s, keys)
			continue
		}
		for _, h := range s.cr.hosts {
			var m map[string]*bucket[T]
			switch h.kind {
			case hostExact:
				m = r.exact
			case hostSuffix:
				m = r.suffix
			default:
				m = r.prefix
			}
			b := m[h.value]
			if b == nil {
				b = &bucket[T]{}
				m[h.value] = b
			}
			b.add(s, keys)
		}
	}
	r.hostless.finish()
	for _, m := range []map[string]*bucket[T]{r.exact, r.suffix, r.prefix} {
		for _, b := range m {
			b.finish()
		}
	}
	return r, errs, nil
}

// add appends s under each of its path keys, skipping a repeat of the
// previous entry (a route listing two hosts that land in one bucket).
func (b *bucket[T]) add(s *subRoute[T], keys []string) {
	for _, k := range keys {
		if n := len(b.entries); n > 0 && b.entries[n-1].sr == s && b.entries[n-1].key == k {
			continue
		}
		b.entries = append(b.entries, entry[T]{key: k, sr: s})
	}
}

// finish builds the prefix map of a large bucket.
func (b *bucket[T]) finish() {
	if b == nil || len(b.entries) <= smallBucket {
		return
	}
	b.byKey = make(map[string][]*subRoute[T])
	for _, e := range b.entries {
		l := b.byKey[e.key]
		if len(l) > 0 && l[len(l)-1] == e.sr {
			continue
		}
		if l == nil {
			b.lengths = append(b.lengths, len(e.key))
		}
		b.byKey[e.key] = append(l, e.sr)
	}
	slices.Sort(b.lengths)
	b.lengths = slices.Compact(b.lengths)
	b.entries = nil
}

// pathKeys returns the literal prefixes under which s is indexed: its
// prefix paths, the literal prefix of each regex, or "" for a sub-route
// without paths.
func (s *subRoute[T]) pathKeys() []string {
	if len(s.prefixes) > 0 {
		return s.prefixes
	}
	if len(s.regexes) == 0 {
		return []string{""}
	}
	keys := make([]string, 0, len(s.regexes))
	for _, re := range s.regexes {
		keys = append(keys, regexLiteralPrefix(re))
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// regexLiteralPrefix returns a string every match of the start-anchored re
// begins with, or "" when it cannot tell.
func regexLiteralPrefix(re *regexp.Regexp) string {
	t, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return ""
	}
	if t.Op != syntax.OpConcat || len(t.Sub) < 2 || t.Sub[0].Op != syntax.OpBeginText {
		return ""
	}
	lit := t.Sub[1]
	if lit.Op != syntax.OpLiteral || lit.Flags&syntax.FoldCase != 0 {
		return ""
	}
	return string(lit.Rune)
}

// compileRoute compiles one route into its sub-routes, one per path group.
func compileRoute[T any](rt *Route[T], regexCache map[string]*regexp.Regexp) ([]*subRoute[T], error) {
	id, err := parseUUID(rt.ID)
	if err != nil {
		return nil, err
	}
	protos, err := parseProtocols(rt.Protocols)
	if err != nil {
		return nil, err
	}
	if protos == 0 {
		// A stream route: not part of the HTTP router.
		return nil, nil
	}
	cr := &compiledRoute[T]{route: rt, methods: rt.Methods, protos: protos, hostSet: len(rt.Hosts) > 0}
	wildcard := false
	for _, h := range rt.Hosts {
		he, wild, err := compileHost(h)
		if err != nil {
			return nil, err
		}
		wildcard = wildcard || wild
		cr.hosts = append(cr.hosts, he)
	}
	for _, s := range rt.SNIs {
		if len(s) > 1 && strings.HasSuffix(s, ".") {
			s = s[:len(s)-1]
		}
		cr.snis = append(cr.snis, s)
	}
	names := make([]string, 0, len(rt.Headers))
	for n := range rt.Headers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.EqualFold(n, "host") {
			return nil, errors.New("header 'host' cannot be matched by headers")
		}
		vals := rt.Headers[n]
		if len(vals) == 0 {
			return nil, fmt.Errorf("header %q has no values", n)
		}
		hr := headerRule{name: canonicalHeaderName(n)}
		for _, v := range vals {
			v = strings.ToLower(v)
			if strings.HasPrefix(v, "~*") {
				re, err := regexp.Compile(v[2:])
				if err != nil {
					return nil, fmt.Errorf("invalid regex in header %q: %w", n, err)
				}
				hr.regexs = append(hr.regexs, re)
				continue
			}
			hr.exact = append(hr.exact, v)
		}
		cr.headers = append(cr.headers, hr)
	}

	prio := func(isRegex bool, plen int) uint64 {
		return computePriority(len(rt.Methods), len(rt.Hosts), len(rt.Headers), len(rt.SNIs), len(rt.Paths),
			rt.Hosts != nil, wildcard, isRegex, rt.RegexPriority, plen)
	}

	if len(rt.Paths) == 0 {
		return []*subRoute[T]{{priority: prio(false, 0), uuid: id, cr: cr}}, nil
	}

	// Group the paths: all regexes together, prefixes by length. Groups are
	// kept in order of first appearance so their evaluation is stable.
	var regexGroup *subRoute[T]
	byLen := map[int]*subRoute[T]{}
	var order []*subRoute[T]
	for _, p := range rt.Paths {
		if strings.HasPrefix(p, "~") {
			re, err := compileRegexPath(p, regexCache)
			if err != nil {
				return nil, err
			}
			if regexGroup == nil {
				regexGroup = &subRoute[T]{cr: cr, priority: prio(true, 0)}
				order = append(order, regexGroup)
			}
			regexGroup.regexes = append(regexGroup.regexes, re)
			continue
		}
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("invalid path %q: should start with: / (fixed path) or ~/ (regex path)", p)
		}
		g := byLen[len(p)]
		if g == nil {
			g = &subRoute[T]{cr: cr, priority: prio(false, len(p))}
			byLen[len(p)] = g
			order = append(order, g)
		}
		g.prefixes = append(g.prefixes, p)
	}
	for _, g := range order {
		switch {
		case len(rt.Paths) == 1:
			// Kong splits only routes with several paths; a single path
			// keeps the route's own ID.
			g.uuid = id
		case g.regexes != nil:
			g.uuid = subRouteID(rt.ID, true, 0)
		default:
			g.uuid = subRouteID(rt.ID, false, len(g.prefixes[0]))
		}
	}
	return order, nil
}
