// Package proxycache is Kong's proxy-cache plugin with the memory
// strategy: cacheable upstream responses are kept in process memory
// (surviving configuration swaps) and served on later requests.
package proxycache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// Name and Priority are Kong's.
const (
	Name     = "proxy-cache"
	Priority = 100
)

func init() { plugin.Register(Name, Priority, New) }

// ResponseHeaders selects the headers the plugin adds to responses.
type ResponseHeaders struct {
	Age          bool `json:"age"`
	XCacheStatus bool `json:"X-Cache-Status"`
	XCacheKey    bool `json:"X-Cache-Key"`
}

// Config is the plugin configuration with Kong's defaults filled in.
// CacheTTL and StorageTTL are in seconds.
type Config struct {
	ResponseCode  []int    `json:"response_code"`
	RequestMethod []string `json:"request_method"`
	ContentType   []string `json:"content_type"`
	CacheTTL      int      `json:"cache_ttl"`
	Strategy      string   `json:"strategy"`
	CacheControl  bool     `json:"cache_control"`
	IgnoreURICase bool     `json:"ignore_uri_case"`
	StorageTTL    *int     `json:"storage_ttl"`
	Memory        struct {
		DictionaryName string `json:"dictionary_name"`
	} `json:"memory"`
	VaryQueryParams []string        `json:"vary_query_params"`
	VaryHeaders     []string        `json:"vary_headers"`
	ResponseHeaders ResponseHeaders `json:"response_headers"`
}

// maxEntries bounds one memory store; beyond it the oldest entries go.
const maxEntries = 10000

type entry struct {
	status   int
	header   http.Header
	body     []byte
	storedAt time.Time
	// expires is when the entry leaves storage (storage_ttl, else
	// cache_ttl).
	expires time.Time
}

// store is one memory dictionary, shared by the instances naming it.
type store struct {
	mu      sync.Mutex // guards entries
	entries map[string]*entry
}

func (s *store) get(key string, now time.Time) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[key]
	if e != nil && !now.Before(e.expires) {
		delete(s.entries, key)
		return nil
	}
	return e
}

func (s *store) put(key string, e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.entries) >= maxEntries {
		var oldestKey string
		var oldest time.Time
		for k, v := range s.entries {
			if !e.storedAt.Before(v.expires) {
				delete(s.entries, k)
				continue
			}
			if oldestKey == "" || v.storedAt.Before(oldest) {
				oldestKey, oldest = k, v.storedAt
			}
		}
		if len(s.entries) >= maxEntries {
			delete(s.entries, oldestKey)
		}
	}
	s.entries[key] = e
}

// ProxyCache is a built proxy-cache instance.
type ProxyCache struct {
	cfg        Config
	store      *store
	methods    map[string]bool
	codes      map[int]bool
	types      map[string]bool
	cacheTTL   time.Duration
	storageTTL time.Duration
	stateKey   string
}

var (
	_ plugin.Accesser       = (*ProxyCache)(nil)
	_ plugin.HeaderFilterer = (*ProxyCache)(nil)
	_ plugin.BodyFilterer   = (*ProxyCache)(nil)
	_ plugin.BodyWanter     = (*ProxyCache)(nil)
)

// nowFunc is the clock; tests replace it.
var nowFunc = time.Now

// New builds a proxy-cache instance.
func New(raw json.RawMessage, env plugin.Env) (plugin.Instance, error) {
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("proxy-cache: invalid config: %w", err)
	}
	if cfg.Strategy != "memory" {
		return nil, fmt.Errorf("proxy-cache: strategy %q is not supported (memory)", cfg.Strategy)
	}
	if cfg.CacheTTL <= 0 {
		return nil, errors.New("proxy-cache: cache_ttl must be greater than 0")
	}
	dict := cfg.Memory.DictionaryName
	if dict == "" {
		dict = "kong_db_cache"
	}
	v, err := env.State().LoadOrCreate("proxy-cache:memory:"+dict, func() (any, error) {
		return &store{entries: make(map[string]*entry)}, nil
	})
	if err != nil {
		return nil, err
	}
	p := &ProxyCache{cfg: cfg, store: v.(*store), methods: map[string]bool{}, codes: map[int]bool{}, types: map[string]bool{},
		cacheTTL: time.Duration(cfg.CacheTTL) * time.Second, stateKey: "proxy-cache:" + env.Plugin().ID}
	p.storageTTL = p.cacheTTL
	if cfg.StorageTTL != nil && *cfg.StorageTTL > 0 {
		p.storageTTL = time.Duration(*cfg.StorageTTL) * time.Second
	}
	for _, m := range cfg.RequestMethod {
		p.methods[m] = true
	}
	for _, c := range cfg.ResponseCode {
		p.codes[c] = true
	}
	for _, t := range cfg.ContentType {
		p.types[t] = true
	}
	return p, nil
}

// reqState is what access learned, for the later phases.
type reqState struct {
	status string // Bypass, Miss, Refresh, Hit
	key    string
}

func directives(v string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		if k != "" {
			out[strings.ToLower(k)] = strings.Trim(val, `"`)
		}
	}
	return out
}

// key is a sha256 over consumer, route, method, URI and the varied query
// parameters and headers.
func (p *ProxyCache) key(c *plugin.Ctx) string {
	r := c.Request
	consumer := ""
	if c.Consumer != nil {
		consumer = c.Consumer.ID
	}
	uri := r.URL.Path
	if p.cfg.IgnoreURICase {
		uri = strings.ToLower(uri)
	}
	q := r.URL.Query()
	names := p.cfg.VaryQueryParams
	if len(names) == 0 {
		for k := range q {
			names = append(names, k)
		}
	}
	names = slices.Clone(names)
	sort.Strings(names)
	var params []string
	for _, n := range names {
		if vs, ok := q[n]; ok {
			vs = slices.Clone(vs)
			sort.Strings(vs)
			params = append(params, n+"="+strings.Join(vs, ","))
		}
	}
	hnames := slices.Clone(p.cfg.VaryHeaders)
	sort.Strings(hnames)
	var hdrs []string
	for _, n := range hnames {
		if vs := r.Header.Values(n); len(vs) > 0 {
			hdrs = append(hdrs, strings.ToLower(n)+"="+strings.Join(vs, ","))
		}
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{consumer, c.RouteID, r.Method, uri, strings.Join(params, "&"), strings.Join(hdrs, "|")}, "|")))
	return hex.EncodeToString(sum[:])
}

// Access implements [plugin.Accesser]: serve a fresh entry, or mark the
// request for storing.
func (p *ProxyCache) Access(c *plugin.Ctx) error {
	r := c.Request
	st := &reqState{status: "Bypass"}
	c.SetShared(p.stateKey, st)
	if !p.methods[r.Method] {
		return nil
	}
	if p.cfg.CacheControl {
		cc := directives(r.Header.Get("Cache-Control"))
		if _, ok := cc["no-store"]; ok {
			return nil
		}
		if _, ok := cc["no-cache"]; ok {
			return nil
		}
		if r.Header.Get("Authorization") != "" {
			return nil
		}
	}
	st.key = p.key(c)
	now := nowFunc()
	e := p.store.get(st.key, now)
	if e == nil {
		st.status = "Miss"
		return nil
	}
	age := now.Sub(e.storedAt)
	if age > p.cacheTTL {
		st.status = "Refresh"
		return nil
	}
	if p.cfg.CacheControl {
		if maxAge, ok := directives(r.Header.Get("Cache-Control"))["max-age"]; ok {
			if n, err := strconv.Atoi(maxAge); err == nil && age > time.Duration(n)*time.Second {
				st.status = "Refresh"
				return nil
			}
		}
	}
	st.status = "Hit"
	h := e.header.Clone()
	if p.cfg.ResponseHeaders.Age {
		h.Set("Age", strconv.Itoa(int(age/time.Second)))
	}
	c.Exit(e.status, h, e.body)
	return nil
}

func (p *ProxyCache) cacheableResponse(c *plugin.Ctx) bool {
	if !p.codes[c.Response.Status] {
		return false
	}
	ct := c.Response.Header.Get("Content-Type")
	if !p.types[ct] {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !p.types[mt] {
			return false
		}
	}
	if p.cfg.CacheControl {
		cc := directives(c.Response.Header.Get("Cache-Control"))
		for _, d := range []string{"private", "no-store", "no-cache"} {
			if _, ok := cc[d]; ok {
				return false
			}
		}
	}
	return true
}

// HeaderFilter implements [plugin.HeaderFilterer].
func (p *ProxyCache) HeaderFilter(c *plugin.Ctx) error {
	st, _ := c.Shared(p.stateKey).(*reqState)
	if st == nil {
		return nil
	}
	if (st.status == "Miss" || st.status == "Refresh") && (c.Response.Exit || !p.cacheableResponse(c)) {
		st.status = "Bypass"
	}
	h := c.Response.Header
	if p.cfg.ResponseHeaders.XCacheStatus {
		h.Set("X-Cache-Status", st.status)
	}
	if p.cfg.ResponseHeaders.XCacheKey && st.key != "" {
		h.Set("X-Cache-Key", st.key)
	}
	return nil
}

// WantsBody implements [plugin.BodyWanter]: only responses being stored.
func (p *ProxyCache) WantsBody(c *plugin.Ctx) bool {
	st, _ := c.Shared(p.stateKey).(*reqState)
	return st != nil && (st.status == "Miss" || st.status == "Refresh")
}

// BodyFilter implements [plugin.BodyFilterer]: store the response.
func (p *ProxyCache) BodyFilter(c *plugin.Ctx) error {
	st, _ := c.Shared(p.stateKey).(*reqState)
	if st == nil {
		return nil
	}
	h := c.Response.Header.Clone()
	for _, k := range []string{"Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade", "Age", "X-Cache-Status", "Content-Length"} {
		h.Del(k)
	}
	now := nowFunc()
	p.store.put(st.key, &entry{status: c.Response.Status, header: h, body: slices.Clone(c.Response.Body), storedAt: now, expires: now.Add(p.storageTTL)})
	return nil
}
