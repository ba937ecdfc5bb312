package compile

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/wire"
)

// TestEntityErrorPaths checks that a problem is reported at the path of the
// field it is in, however deep, as data rather than recovered from a
// message.
func TestEntityErrorPaths(t *testing.T) {
	const (
		pluginA = "00000000-0000-4000-8000-00000000d001"
		targetA = "00000000-0000-4000-8000-00000000c101"
		keyA    = "00000000-0000-4000-8000-00000000f101"
	)
	upstreamWith := func(hc map[string]any) map[string]any {
		return map[string]any{"upstreams": arr(map[string]any{"id": upA, "name": "u1", "healthchecks": hc})}
	}
	tests := []struct {
		name string
		cfg  map[string]any
		want wire.EntityError
	}{
		{
			name: "array element of the wrong type",
			cfg: map[string]any{"services": arr(svc(svcA, "a.internal", 80, nil)),
				"routes": arr(route(routeA, svcA, map[string]any{"paths": arr("/a", float64(2))}))},
			want: wire.EntityError{EntityType: "routes", EntityID: routeA, EntityName: "route-b001", Field: "paths.1", Message: "expected a string"},
		},
		{
			name: "header value of the wrong type",
			cfg: map[string]any{"services": arr(svc(svcA, "a.internal", 80, nil)),
				"routes": arr(route(routeA, svcA, map[string]any{"headers": map[string]any{"x-version": arr(true)}}))},
			want: wire.EntityError{EntityType: "routes", EntityID: routeA, EntityName: "route-b001", Field: "headers.x-version.0", Message: "expected a string"},
		},
		{
			name: "reference without an id",
			cfg:  map[string]any{"routes": arr(route(routeA, "", map[string]any{"service": map[string]any{"name": "x"}, "paths": arr("/a")}))},
			want: wire.EntityError{EntityType: "routes", EntityID: routeA, EntityName: "route-b001", Field: "service", Message: "expected a reference with an id"},
		},
		{
			name: "number in a record",
			cfg:  upstreamWith(map[string]any{"threshold": "half"}),
			want: wire.EntityError{EntityType: "upstreams", EntityID: upA, EntityName: "u1", Field: "healthchecks.threshold", Message: "expected a number"},
		},
		{
			name: "integer two records down",
			cfg:  upstreamWith(map[string]any{"active": map[string]any{"healthy": map[string]any{"successes": 1.5}}}),
			want: wire.EntityError{EntityType: "upstreams", EntityID: upA, EntityName: "u1", Field: "healthchecks.active.healthy.successes", Message: "expected an integer"},
		},
		{
			name: "status out of range two records down",
			cfg:  upstreamWith(map[string]any{"passive": map[string]any{"unhealthy": map[string]any{"http_statuses": arr(float64(1000))}}}),
			want: wire.EntityError{EntityType: "upstreams", EntityID: upA, EntityName: "u1", Field: "healthchecks.passive.unhealthy.http_statuses", Message: "invalid HTTP status 1000"},
		},
		{
			name: "record of the wrong type",
			cfg:  upstreamWith(map[string]any{"active": "yes"}),
			want: wire.EntityError{EntityType: "upstreams", EntityID: upA, EntityName: "u1", Field: "healthchecks.active", Message: "expected a record"},
		},
		{
			name: "target field, reported on the target",
			cfg: map[string]any{"upstreams": arr(map[string]any{"id": upA, "name": "u1"}),
				"targets": arr(map[string]any{"id": targetA, "upstream": upA, "target": "10.0.0.1:80", "weight": "heavy"})},
			want: wire.EntityError{EntityType: "targets", EntityID: targetA, EntityName: "10.0.0.1:80", Field: "weight", Message: "expected an integer"},
		},
		{
			name: "vault reference in a record",
			cfg: map[string]any{"keys": arr(map[string]any{"id": keyA, "name": "k", "kid": "k",
				"pem": map[string]any{"private_key": "{vault://env/gantry-compile-test-missing}"}})},
			want: wire.EntityError{EntityType: "keys", EntityID: keyA, EntityName: "k", Field: "pem.private_key",
				Message: "vault reference {vault://env/gantry-compile-test-missing}: environment variable GANTRY_COMPILE_TEST_MISSING is not set"},
		},
		{
			name: "plugin ordering",
			cfg: map[string]any{"plugins": arr(map[string]any{"id": pluginA, "name": "cors", "config": map[string]any{},
				"ordering": map[string]any{"before": map[string]any{"access": "key-auth"}}})},
			want: wire.EntityError{EntityType: "plugins", EntityID: pluginA, EntityName: "cors", Field: "ordering.before.access", Message: "expected an array of strings"},
		},
		{
			name: "plugin config array element, from the plugin's schema",
			cfg: map[string]any{"plugins": arr(map[string]any{"id": pluginA, "name": "key-auth",
				"config": map[string]any{"key_names": arr("apikey", float64(7))}})},
			want: wire.EntityError{EntityType: "plugins", EntityID: pluginA, EntityName: "key-auth", Field: "config.key_names.1", Message: "expected a string"},
		},
		{
			name: "vault reference in a plugin config array",
			cfg: map[string]any{"plugins": arr(map[string]any{"id": pluginA, "name": "no-schema-plugin",
				"config": map[string]any{"secrets": arr("plain", "{vault://env/gantry-compile-test-missing}")}})},
			want: wire.EntityError{EntityType: "plugins", EntityID: pluginA, EntityName: "no-schema-plugin", Field: "config.secrets.1",
				Message: "vault reference {vault://env/gantry-compile-test-missing}: environment variable GANTRY_COMPILE_TEST_MISSING is not set"},
		},
		{
			name: "plugin config of the wrong type",
			cfg:  map[string]any{"plugins": arr(map[string]any{"id": pluginA, "name": "cors", "config": "all"})},
			want: wire.EntityError{EntityType: "plugins", EntityID: pluginA, EntityName: "cors", Field: "config", Message: "expected a record"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, errs, err := Compile(context.Background(), tc.cfg, Options{Health: newRegistry(t), LookupEnv: noEnv})
			if !errors.Is(err, ErrRejected) || c != nil {
				t.Fatalf("Compile = %v, %v; want rejection", c, err)
			}
			for _, e := range errs {
				if e == tc.want {
					return
				}
			}
			t.Errorf("no error %+v in %+v", tc.want, errs)
		})
	}
}

// TestDecodeValues checks how values of each shape a config_table carries
// (JSON numbers, YAML ints, json.Number, nested references, Kong's {} for an
// empty array) decode.
func TestDecodeValues(t *testing.T) {
	tests := []struct {
		name    string
		doc     map[string]any
		check   func(r *routeEntity) bool
		wantErr string // "path: message" of the only error, or ""
	}{
		{"JSON number", map[string]any{"regex_priority": float64(3)}, func(r *routeEntity) bool { return r.RegexPriority == 3 }, ""},
		{"YAML int", map[string]any{"regex_priority": 3}, func(r *routeEntity) bool { return r.RegexPriority == 3 }, ""},
		{"json.Number", map[string]any{"regex_priority": json.Number("3")}, func(r *routeEntity) bool { return r.RegexPriority == 3 }, ""},
		{"fraction for an integer", map[string]any{"regex_priority": 2.5}, nil, "regex_priority: expected an integer"},
		{"flat reference", map[string]any{"service": "s1"}, func(r *routeEntity) bool { return r.Service == "s1" }, ""},
		{"nested reference", map[string]any{"service": map[string]any{"id": "s1"}}, func(r *routeEntity) bool { return r.Service == "s1" }, ""},
		{"number for a reference", map[string]any{"service": float64(1)}, nil, "service: expected a reference"},
		{"empty object for an array", map[string]any{"paths": map[string]any{}}, func(r *routeEntity) bool { return r.Paths != nil && len(r.Paths) == 0 }, ""},
		{"object for an array", map[string]any{"paths": map[string]any{"a": "/a"}}, nil, "paths: expected an array of strings"},
		{"typed string slice", map[string]any{"hosts": []string{"a.test"}}, func(r *routeEntity) bool { return reflect.DeepEqual(r.Hosts, []string{"a.test"}) }, ""},
		{"null header values", map[string]any{"headers": map[string]any{"x-a": nil}}, func(r *routeEntity) bool { _, ok := r.Headers["x-a"]; return ok }, ""},
		{"string for a boolean", map[string]any{"strip_path": "yes"}, nil, "strip_path: expected a boolean"},
		{"explicit value over the default", map[string]any{"path_handling": "v1", "strip_path": false},
			func(r *routeEntity) bool { return r.PathHandling == "v1" && !r.StripPath }, ""},
	}
	decode := decoder(collections.routes)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, _, fe := decode(tc.doc)
			r := v.Addr().Interface().(*routeEntity)
			var got string
			if len(fe) > 0 {
				got = strings.Join(fe[0].path, ".") + ": " + fe[0].msg
			}
			if got != tc.wantErr || len(fe) > 1 {
				t.Fatalf("errors %v, want %q", fe, tc.wantErr)
			}
			if tc.check != nil && !tc.check(r) {
				t.Errorf("decoded %+v", *r)
			}
		})
	}
}

// TestDecodePresence checks opt and pointer fields: whether a document set
// a field is kept where compile needs it.
func TestDecodePresence(t *testing.T) {
	tests := []struct {
		name  string
		doc   map[string]any
		check func(u *upstreamEntity, s *serviceEntity) bool
	}{
		{"algorithm left to its default", map[string]any{}, func(u *upstreamEntity, _ *serviceEntity) bool {
			return u.Algorithm == opt[string]{V: "round-robin"}
		}},
		{"algorithm null", map[string]any{"algorithm": nil}, func(u *upstreamEntity, _ *serviceEntity) bool {
			return u.Algorithm == opt[string]{V: "round-robin"}
		}},
		{"algorithm set", map[string]any{"algorithm": "least-connections"}, func(u *upstreamEntity, _ *serviceEntity) bool {
			return u.Algorithm == opt[string]{V: "least-connections", Set: true}
		}},
		{"tls_verify null", map[string]any{"tls_verify": nil}, func(_ *upstreamEntity, s *serviceEntity) bool {
			return s.TLSVerify == nil && s.TLSVerifyDepth == nil
		}},
		{"tls_verify false", map[string]any{"tls_verify": false, "tls_verify_depth": float64(0)}, func(_ *upstreamEntity, s *serviceEntity) bool {
			return s.TLSVerify != nil && !*s.TLSVerify && s.TLSVerifyDepth != nil && *s.TLSVerifyDepth == 0
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			uv, _, ufe := decoder(collections.upstreams)(tc.doc)
			sv, _, sfe := decoder(collections.services)(tc.doc)
			if len(ufe)+len(sfe) > 0 {
				t.Fatalf("errors %v %v", ufe, sfe)
			}
			u, s := uv.Addr().Interface().(*upstreamEntity), sv.Addr().Interface().(*serviceEntity)
			if !tc.check(u, s) {
				t.Errorf("upstream %+v, service %+v", *u, *s)
			}
		})
	}
}

// TestNewPlanRefuses checks that a struct that does not fit its schema
// fails when its plan is built (at package init for the real ones).
func TestNewPlanRefuses(t *testing.T) {
	services, _ := schema.Lookup("services")
	keyAuths, _ := schema.Lookup("keyauth_credentials")
	tests := []struct {
		name   string
		typ    reflect.Type
		entity *schema.Entity
		want   string
	}{
		{"untagged field", reflect.TypeFor[struct{ ID string }](), services, "has no schema tag"},
		{"unknown schema field", reflect.TypeFor[struct {
			X string `schema:"retry"`
		}](), services, `the schema has no field "retry"`},
		{"wrong Go type", reflect.TypeFor[struct {
			X string `schema:"retries"`
		}](), services, `cannot hold schema field "retries" of type integer`},
		{"pointer for a field with a default", reflect.TypeFor[struct {
			X *int `schema:"retries"`
		}](), services, "has a default"},
		{"foreign key as a string", reflect.TypeFor[struct {
			X string `schema:"client_certificate"`
		}](), services, "cannot hold"},
		{"transient the entity does not take", reflect.TypeFor[struct {
			X int `schema:"ttl,transient"`
		}](), services, "is not a transient field"},
		{"unknown option", reflect.TypeFor[struct {
			X int `schema:"ttl,input"`
		}](), keyAuths, "unknown tag option"},
		{"unsupported type", reflect.TypeFor[struct {
			X []bool `schema:"ca_certificates"`
		}](), services, "cannot be decoded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if msg, _ := r.(string); !strings.Contains(msg, tc.want) {
					t.Errorf("panic %v, want one containing %q", r, tc.want)
				}
			}()
			newPlan(tc.typ, tc.entity.Fields, nil, "test")
		})
	}
}
