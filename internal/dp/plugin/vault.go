package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// VaultResolverOptions configure a [VaultResolver].
type VaultResolverOptions struct {
	// Vaults are the configured vault entities; the "env" type is always
	// available under its own name.
	Vaults []VaultEntity
	// LookupEnv reads one environment variable; required.
	LookupEnv func(name string) (string, bool)
}

// VaultResolver resolves Kong vault references of the form
// {vault://<name-or-prefix>/<resource>[/<key>][?<query>][#<version>]} against
// env vaults. It is immutable and safe for concurrent use.
type VaultResolver struct {
	lookup func(string) (string, bool)
	// envPrefixes maps a reference name (vault type "env" or a vault's
	// prefix) to the variable-name prefix of that vault.
	envPrefixes map[string]string
}

var envVaultPrefix = regexp.MustCompile(`^[A-Za-z_-][A-Za-z0-9_-]*$`)

// NewVaultResolver checks and indexes the vaults.
func NewVaultResolver(opts VaultResolverOptions) (*VaultResolver, error) {
	if opts.LookupEnv == nil {
		return nil, errors.New("vault resolver: LookupEnv is required")
	}
	r := &VaultResolver{lookup: opts.LookupEnv, envPrefixes: map[string]string{"env": ""}}
	for _, v := range opts.Vaults {
		if v.Name != "env" {
			return nil, fmt.Errorf("vault %s: unsupported vault type %q", v.Prefix, v.Name)
		}
		if v.EnvPrefix != "" && !envVaultPrefix.MatchString(v.EnvPrefix) {
			return nil, fmt.Errorf("vault %s: invalid config.prefix %q", v.Prefix, v.EnvPrefix)
		}
		if v.Prefix == "" {
			return nil, fmt.Errorf("vault %s: missing prefix", v.ID)
		}
		r.envPrefixes[v.Prefix] = v.EnvPrefix
	}
	return r, nil
}

// IsReference reports whether s has the shape of a vault reference.
func IsReference(s string) bool {
	return strings.HasPrefix(s, "{vault://") && strings.HasSuffix(s, "}")
}

// Resolve returns the secret a reference points to. The variable read is
// upper(prefix + resource) with "-" replaced by "_"; version 2 reads
// <NAME>_PREVIOUS; a key after the resource selects a field of a JSON secret.
func (r *VaultResolver) Resolve(ref string) (string, error) {
	if !IsReference(ref) {
		return "", fmt.Errorf("%q is not a vault reference", ref)
	}
	body := ref[len("{vault://") : len(ref)-1]
	version := ""
	if i := strings.IndexByte(body, '#'); i >= 0 {
		body, version = body[:i], body[i+1:]
	}
	var query url.Values
	if i := strings.IndexByte(body, '?'); i >= 0 {
		var err error
		if query, err = url.ParseQuery(body[i+1:]); err != nil {
			return "", fmt.Errorf("vault reference %s: invalid query: %w", ref, err)
		}
		body = body[:i]
	}
	parts := strings.Split(body, "/")
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return "", fmt.Errorf("vault reference %s: missing vault name or resource", ref)
	}
	prefix, ok := r.envPrefixes[parts[0]]
	if !ok {
		return "", fmt.Errorf("vault reference %s: vault %q is not configured", ref, parts[0])
	}
	if p := query.Get("prefix"); p != "" {
		prefix = p
	}
	resource, key := parts[1], ""
	if len(parts) > 2 {
		// With more than one path segment the last one is a JSON key.
		resource = strings.Join(parts[1:len(parts)-1], "/")
		key = parts[len(parts)-1]
	}
	name := strings.ToUpper(strings.ReplaceAll(prefix+resource, "-", "_"))
	switch version {
	case "", "1":
	case "2":
		name += "_PREVIOUS"
	default:
		return "", fmt.Errorf("vault reference %s: unsupported version %q", ref, version)
	}
	val, ok := r.lookup(name)
	if !ok {
		return "", fmt.Errorf("vault reference %s: environment variable %s is not set", ref, name)
	}
	if key == "" {
		return val, nil
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(val), &obj); err != nil {
		return "", fmt.Errorf("vault reference %s: secret %s is not a JSON object: %w", ref, name, err)
	}
	v, ok := obj[key]
	if !ok {
		return "", fmt.Errorf("vault reference %s: key %q not found in secret %s", ref, key, name)
	}
	if s, ok := v.(string); ok {
		return s, nil
	}
	b, _ := json.Marshal(v)
	return string(b), nil
}

// resolveConfig replaces every string in cfg that is a vault reference by
// its value. Configurations without references are returned unchanged so
// the common case costs one scan.
func resolveConfig(cfg json.RawMessage, resolve func(string) (string, error)) (json.RawMessage, error) {
	if !bytes.Contains(cfg, []byte("{vault://")) {
		return cfg, nil
	}
	var doc any
	if err := json.Unmarshal(cfg, &doc); err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	var walk func(v any) (any, error)
	walk = func(v any) (any, error) {
		switch t := v.(type) {
		case string:
			if IsReference(t) {
				return resolve(t)
			}
		case map[string]any:
			for k, e := range t {
				nv, err := walk(e)
				if err != nil {
					return nil, err
				}
				t[k] = nv
			}
		case []any:
			for i, e := range t {
				nv, err := walk(e)
				if err != nil {
					return nil, err
				}
				t[i] = nv
			}
		}
		return v, nil
	}
	doc, err := walk(doc)
	if err != nil {
		return nil, err
	}
	return json.Marshal(doc)
}
