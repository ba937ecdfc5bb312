// Package botdetection is Kong's bot-detection plugin: requests whose
// User-Agent matches a deny rule or a known bot are refused, unless an
// allow rule matches first.
package botdetection

import (
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// Name and Priority are Kong's.
const (
	Name     = "bot-detection"
	Priority = 2500
)

func init() { plugin.Register(Name, Priority, New) }

// Config is the plugin configuration: regexes matched against User-Agent.
type Config struct {
	Allow []string `json:"allow"`
	Deny  []string `json:"deny"`
}

// botRules recognise common crawlers, scrapers and scripted clients. The
// list is Gantry's own and approximates, not reproduces, Kong's rules.lua.
var botRules = []*regexp.Regexp{
	regexp.MustCompile(`(?i)\b(?:google|bing|msn|duckduck|yandex|baidu|sogou|exa|face|twitter|linkedin|apple|petal|semrush|ahrefs|mj12|dot|seznam|applebot|slack)bot\b`),
	regexp.MustCompile(`(?i)(?:googlebot|adsbot-google|mediapartners-google|yahoo! slurp|ia_archiver|facebookexternalhit|baiduspider|yandex\w*|bingpreview)`),
	regexp.MustCompile(`(?i)\b[\w-]*(?:bot|spider|crawler|crawl|scraper|archiver|indexer)\b`),
	regexp.MustCompile(`(?i)^(?:curl|wget|python-requests|python-urllib|go-http-client|okhttp|apache-httpclient|java/|libwww-perl|scrapy|httpie|aiohttp|axios/|node-fetch|masscan|zgrab|nikto|sqlmap)`),
}

// BotDetection is a built bot-detection instance.
type BotDetection struct {
	allow, deny []*regexp.Regexp
}

var _ plugin.Accesser = (*BotDetection)(nil)

func compile(field string, in []string) ([]*regexp.Regexp, error) {
	out := make([]*regexp.Regexp, 0, len(in))
	for _, s := range in {
		re, err := regexp.Compile(s)
		if err != nil {
			return nil, fmt.Errorf("bot-detection: %s: invalid regex %q: %w", field, s, err)
		}
		out = append(out, re)
	}
	return out, nil
}

// New builds a bot-detection instance.
func New(raw json.RawMessage, env plugin.Env) (plugin.Instance, error) {
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("bot-detection: invalid config: %w", err)
	}
	b := &BotDetection{}
	var err error
	if b.allow, err = compile("allow", cfg.Allow); err != nil {
		return nil, err
	}
	if b.deny, err = compile("deny", cfg.Deny); err != nil {
		return nil, err
	}
	return b, nil
}

func matchAny(rs []*regexp.Regexp, s string) bool {
	for _, r := range rs {
		if r.MatchString(s) {
			return true
		}
	}
	return false
}

// Access implements [plugin.Accesser].
func (b *BotDetection) Access(c *plugin.Ctx) error {
	uas := c.Request.Header["User-Agent"]
	if len(uas) > 1 {
		c.Error(400, "Only one User-Agent header allowed", nil)
		return nil
	}
	if len(uas) == 0 {
		return nil
	}
	ua := uas[0]
	if matchAny(b.allow, ua) {
		return nil
	}
	if matchAny(b.deny, ua) || matchAny(botRules, ua) {
		c.Error(403, "Forbidden", nil)
	}
	return nil
}
