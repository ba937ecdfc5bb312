// Package ratelimiting is Kong's rate-limiting plugin with the `local` and
// `redis` policies.
package ratelimiting

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// Name and Priority are Kong's.
const (
	Name     = "rate-limiting"
	Priority = 910
)

func init() { plugin.Register(Name, Priority, New) }

// RedisConfig is the `redis` record of the configuration. Timeout is in
// milliseconds.
type RedisConfig struct {
	Host       *string `json:"host"`
	Port       int     `json:"port"`
	Timeout    int     `json:"timeout"`
	Username   *string `json:"username"`
	Password   *string `json:"password"`
	Database   int     `json:"database"`
	SSL        bool    `json:"ssl"`
	SSLVerify  bool    `json:"ssl_verify"`
	ServerName *string `json:"server_name"`
}

// Config is the plugin configuration with Kong's defaults filled in.
// Limits are requests per period; nil means the period is not limited.
type Config struct {
	Second            *float64    `json:"second"`
	Minute            *float64    `json:"minute"`
	Hour              *float64    `json:"hour"`
	Day               *float64    `json:"day"`
	Month             *float64    `json:"month"`
	Year              *float64    `json:"year"`
	LimitBy           string      `json:"limit_by"`
	HeaderName        *string     `json:"header_name"`
	Path              *string     `json:"path"`
	Policy            string      `json:"policy"`
	FaultTolerant     bool        `json:"fault_tolerant"`
	Redis             RedisConfig `json:"redis"`
	HideClientHeaders bool        `json:"hide_client_headers"`
	ErrorCode         float64     `json:"error_code"`
	ErrorMessage      string      `json:"error_message"`
	SyncRate          float64     `json:"sync_rate"`
}

// period is one limit window. Index order is second..year.
type period int

const (
	second period = iota
	minute
	hour
	day
	month
	year
	numPeriods
)

var (
	periodNames = [numPeriods]string{"second", "minute", "hour", "day", "month", "year"}
	// windows are Kong's EXPIRATION values, in seconds.
	windows        = [numPeriods]int64{1, 60, 3600, 86400, 2592000, 31536000}
	limitHeader    [numPeriods]string
	remainHeader   [numPeriods]string
	zeroUUID       = "00000000-0000-0000-0000-000000000000"
	errHeaderLimit = "Ratelimit-Limit"
	errHeaderRem   = "Ratelimit-Remaining"
	errHeaderReset = "Ratelimit-Reset"
)

func init() {
	for p, n := range []string{"Second", "Minute", "Hour", "Day", "Month", "Year"} {
		limitHeader[p] = http.CanonicalHeaderKey("X-RateLimit-Limit-" + n)
		remainHeader[p] = http.CanonicalHeaderKey("X-RateLimit-Remaining-" + n)
	}
}

// periodStarts returns the start of each period containing now, in Unix
// milliseconds, in UTC as Kong's timestamp module computes them.
func periodStarts(now time.Time) [numPeriods]int64 {
	u := now.UTC()
	y, m, d := u.Date()
	return [numPeriods]int64{
		u.Unix() * 1000,
		u.Truncate(time.Minute).UnixMilli(),
		u.Truncate(time.Hour).UnixMilli(),
		time.Date(y, m, d, 0, 0, 0, 0, time.UTC).UnixMilli(),
		time.Date(y, m, 1, 0, 0, 0, 0, time.UTC).UnixMilli(),
		time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(),
	}
}

// backend counts requests per (scope, identifier, period window).
type backend interface {
	// check returns the usage of each limited period before this request
	// and, unless some period is exhausted, counts the request.
	check(ctx context.Context, k keyParts, limits, starts [numPeriods]int64) (usage [numPeriods]int64, stop period, err error)
}

// keyParts identify a counter except for its period.
type keyParts struct {
	route, service, id string
}

// RateLimiting is a built rate-limiting instance.
type RateLimiting struct {
	cfg       Config
	limits    [numPeriods]int64 // 0 = not limited
	route     string            // plugin's route id or the zero UUID
	service   string            // plugin's service id or the zero UUID
	headerKey string
	backend   backend
	timeout   time.Duration
	logger    interface {
		Error(msg string, args ...any)
	}
}

var _ plugin.Accesser = (*RateLimiting)(nil)

// New builds a rate-limiting instance.
func New(raw json.RawMessage, env plugin.Env) (plugin.Instance, error) {
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("rate-limiting: invalid config: %w", err)
	}
	rl := &RateLimiting{cfg: cfg, route: zeroUUID, service: zeroUUID, logger: env.Logger()}
	meta := env.Plugin()
	if meta.RouteID != "" {
		rl.route = meta.RouteID
	}
	if meta.ServiceID != "" {
		rl.service = meta.ServiceID
	}
	limited := false
	prev := int64(0)
	for p, v := range []*float64{cfg.Second, cfg.Minute, cfg.Hour, cfg.Day, cfg.Month, cfg.Year} {
		if v == nil {
			continue
		}
		if *v <= 0 {
			return nil, fmt.Errorf("rate-limiting: %s must be greater than 0", periodNames[p])
		}
		lim := int64(math.Floor(*v))
		if prev > 0 && lim < prev {
			return nil, fmt.Errorf("rate-limiting: the limit for %s(%d) cannot be lower than the limit for a smaller period(%d)", periodNames[p], lim, prev)
		}
		rl.limits[p], prev, limited = lim, lim, true
	}
	if !limited {
		return nil, errors.New("rate-limiting: at least one of these fields must be non-empty: 'config.second', 'config.minute', 'config.hour', 'config.day', 'config.month', 'config.year'")
	}
	switch cfg.LimitBy {
	case "consumer", "credential", "ip", "service":
	case "header":
		if cfg.HeaderName == nil || *cfg.HeaderName == "" {
			return nil, errors.New("rate-limiting: header_name is required when limit_by is header")
		}
		rl.headerKey = http.CanonicalHeaderKey(*cfg.HeaderName)
	case "path":
		if cfg.Path == nil || *cfg.Path == "" {
			return nil, errors.New("rate-limiting: path is required when limit_by is path")
		}
	default:
		return nil, fmt.Errorf("rate-limiting: invalid limit_by %q", cfg.LimitBy)
	}
	if cfg.ErrorCode == 0 {
		cfg.ErrorCode = 429
		rl.cfg.ErrorCode = 429
	}
	switch cfg.Policy {
	case "local":
		st, err := env.State().LoadOrCreate("rate-limiting:local", func() (any, error) { return newLocalStore(), nil })
		if err != nil {
			return nil, err
		}
		rl.backend = st.(*localStore)
	case "redis":
		b, err := newRedisBackend(cfg.Redis, env.State())
		if err != nil {
			return nil, err
		}
		rl.backend = b
		rl.timeout = time.Duration(cfg.Redis.Timeout) * time.Millisecond
	default:
		return nil, fmt.Errorf("rate-limiting: policy %q is not supported (local, redis)", cfg.Policy)
	}
	return rl, nil
}

// identifier is Kong's get_identifier: the configured key, falling back to
// the client IP.
func (rl *RateLimiting) identifier(c *plugin.Ctx) string {
	var id string
	switch rl.cfg.LimitBy {
	case "service":
		id = c.ServiceID
	case "consumer":
		if c.Consumer != nil {
			id = c.Consumer.ID
		} else if c.Credential != nil {
			id = c.Credential.ID
		}
	case "credential":
		if c.Credential != nil {
			id = c.Credential.ID
		}
	case "header":
		if vs := c.Request.Header[rl.headerKey]; len(vs) > 0 {
			id = vs[0]
		}
	case "path":
		if c.Request.URL.Path == *rl.cfg.Path {
			id = c.Request.URL.Path
		}
	}
	if id == "" {
		id = c.ClientIPString()
	}
	return id
}

// Access implements [plugin.Accesser].
func (rl *RateLimiting) Access(c *plugin.Ctx) error {
	now := nowFunc()
	k := keyParts{route: rl.route, service: rl.service, id: rl.identifier(c)}
	starts := periodStarts(now)
	ctx := c.Request.Context()
	if rl.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rl.timeout)
		defer cancel()
	}
	usage, stop, err := rl.backend.check(ctx, k, rl.limits, starts)
	if err != nil {
		if !rl.cfg.FaultTolerant {
			return fmt.Errorf("rate-limiting: %w", err)
		}
		rl.logger.Error("failed to get usage", "plugin", Name, "error", err)
		return nil
	}
	var reset int64
	var hdr http.Header
	if !rl.cfg.HideClientHeaders {
		bestLimit, bestRemain, bestWindow := int64(0), int64(0), int64(0)
		found := false
		nowMs := now.UnixMilli()
		for p := second; p < numPeriods; p++ {
			lim := rl.limits[p]
			if lim == 0 {
				continue
			}
			rem := lim - usage[p]
			if stop < 0 || stop == p {
				rem--
			}
			rem = max(rem, 0)
			if !found || rem < bestRemain || (rem == bestRemain && windows[p] > bestWindow) {
				found = true
				bestLimit, bestRemain, bestWindow = lim, rem, windows[p]
				reset = max(1, windows[p]-(nowMs-starts[p])/1000)
			}
			if stop >= 0 {
				if hdr == nil {
					hdr = make(http.Header, 16)
				}
				hdr[limitHeader[p]] = []string{strconv.FormatInt(lim, 10)}
				hdr[remainHeader[p]] = []string{strconv.FormatInt(rem, 10)}
			} else {
				c.SetResponseHeader(limitHeader[p], c.Itoa(lim))
				c.SetResponseHeader(remainHeader[p], c.Itoa(rem))
			}
		}
		if stop >= 0 {
			hdr[errHeaderLimit] = []string{strconv.FormatInt(bestLimit, 10)}
			hdr[errHeaderRem] = []string{strconv.FormatInt(bestRemain, 10)}
			hdr[errHeaderReset] = []string{strconv.FormatInt(reset, 10)}
		} else {
			c.SetResponseHeader(errHeaderLimit, c.Itoa(bestLimit))
			c.SetResponseHeader(errHeaderRem, c.Itoa(bestRemain))
			c.SetResponseHeader(errHeaderReset, c.Itoa(reset))
		}
	}
	if stop >= 0 {
		if hdr == nil {
			hdr = make(http.Header, 1)
		}
		if reset > 0 {
			hdr["Retry-After"] = []string{strconv.FormatInt(reset, 10)}
		}
		c.Error(int(rl.cfg.ErrorCode), rl.cfg.ErrorMessage, hdr)
	}
	return nil
}

// redisBackend is the `redis` policy.
type redisBackend struct {
	client *redis.Client
}

func newRedisBackend(cfg RedisConfig, state *plugin.StateRegistry) (*redisBackend, error) {
	if cfg.Host == nil || *cfg.Host == "" {
		return nil, errors.New("rate-limiting: redis.host is required with the redis policy")
	}
	if cfg.Port <= 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("rate-limiting: invalid redis.port %d", cfg.Port)
	}
	if cfg.Timeout <= 0 {
		return nil, errors.New("rate-limiting: redis.timeout must be greater than 0")
	}
	opts := &redis.Options{
		Addr: fmt.Sprintf("%s:%d", *cfg.Host, cfg.Port),
		DB:   cfg.Database,
		// Fail fast: fault_tolerant decides what a failure means, and a
		// request must not wait on retries.
		MaxRetries:   -1,
		DialTimeout:  time.Duration(cfg.Timeout) * time.Millisecond,
		ReadTimeout:  time.Duration(cfg.Timeout) * time.Millisecond,
		WriteTimeout: time.Duration(cfg.Timeout) * time.Millisecond,
	}
	if cfg.Username != nil {
		opts.Username = *cfg.Username
	}
	if cfg.Password != nil {
		opts.Password = *cfg.Password
	}
	if cfg.SSL {
		opts.TLSConfig = &tls.Config{InsecureSkipVerify: !cfg.SSLVerify} //nolint:gosec // Kong's ssl_verify=false.
		if cfg.ServerName != nil {
			opts.TLSConfig.ServerName = *cfg.ServerName
		}
	}
	// One client per distinct connection setting, shared by instances and
	// kept across configuration swaps.
	key := fmt.Sprintf("rate-limiting:redis:%s/%d/%s/%t/%t/%d", opts.Addr, opts.DB, opts.Username, cfg.SSL, cfg.SSLVerify, cfg.Timeout)
	if opts.Password != "" {
		key += "/" + fmt.Sprintf("%x", sha(opts.Password))
	}
	v, err := state.LoadOrCreate(key, func() (any, error) { return &redisBackend{client: redis.NewClient(opts)}, nil })
	if err != nil {
		return nil, err
	}
	return v.(*redisBackend), nil
}

// Close closes the client when the state registry prunes it.
func (b *redisBackend) Close() error { return b.client.Close() }

// redisKey is Kong's counter key.
func redisKey(k keyParts, start int64, p period) string {
	return "ratelimit:" + k.route + ":" + k.service + ":" + k.id + ":" + strconv.FormatInt(start, 10) + ":" + periodNames[p]
}

func (b *redisBackend) check(ctx context.Context, k keyParts, limits, starts [numPeriods]int64) ([numPeriods]int64, period, error) {
	var usage [numPeriods]int64
	stop := period(-1)
	var keys []string
	var ps []period
	for p := second; p < numPeriods; p++ {
		if limits[p] > 0 {
			keys = append(keys, redisKey(k, starts[p], p))
			ps = append(ps, p)
		}
	}
	vals, err := b.client.MGet(ctx, keys...).Result()
	if err != nil {
		return usage, stop, err
	}
	for i, v := range vals {
		if s, ok := v.(string); ok {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return usage, stop, fmt.Errorf("counter %s: %w", keys[i], err)
			}
			usage[ps[i]] = n
		}
		if limits[ps[i]]-usage[ps[i]] <= 0 {
			stop = ps[i]
		}
	}
	if stop >= 0 {
		return usage, stop, nil
	}
	pipe := b.client.Pipeline()
	for i, key := range keys {
		pipe.IncrBy(ctx, key, 1)
		pipe.Expire(ctx, key, time.Duration(windows[ps[i]])*time.Second)
	}
	_, err = pipe.Exec(ctx)
	return usage, stop, err
}

func sha(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// nowFunc is the clock instances use; tests replace it.
var nowFunc = time.Now
