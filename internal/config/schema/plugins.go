package schema

import (
	"fmt"
	"sort"
	"strings"
)

// Plugin describes one bundled plugin: its identity as GET / reports it and
// the schema of its plugin entity (the config record, protocols and scoping
// restrictions). Plugins are immutable after package init.
type Plugin struct {
	// Name is the plugin name ("key-auth").
	Name string
	// Version is reported under plugins.available_on_server; bundled
	// plugins carry the gateway version.
	Version string
	// Priority orders execution: higher runs first (handler.lua PRIORITY).
	Priority int
	// Config are the fields of the config record, in Kong's order.
	Config []*Field
	// ConfigCheck is a custom validator over the whole config record; its
	// message is reported at "config".
	ConfigCheck func(cfg map[string]any) string
	// Protocols overrides the plugin entity's protocols field; nil keeps
	// the default ([grpc, grpcs, http, https] out of every protocol).
	Protocols *Field
	// NoConsumer, NoRoute and NoService forbid scoping the plugin to a
	// consumer, route or service ("value must be null"). NoConsumer also
	// forbids consumer groups.
	NoConsumer, NoRoute, NoService bool
	// Checks are entity checks over the plugin entity ("config.x" paths).
	Checks []Check

	entity *Entity
}

var (
	pluginList   []*Plugin
	pluginByName = map[string]*Plugin{}
)

// LookupPlugin finds a bundled plugin by name.
func LookupPlugin(name string) (*Plugin, bool) {
	p, ok := pluginByName[name]
	return p, ok
}

// Plugins returns every bundled plugin sorted by name. The slice is a copy.
func Plugins() []*Plugin {
	return append([]*Plugin(nil), pluginList...)
}

// Entity is the plugin entity schema specialised for this plugin: the
// config record, protocols and scoping restrictions filled in.
func (p *Plugin) Entity() *Entity { return p.entity }

// Process is Entity().Process: it validates a plugin entity of this plugin.
func (p *Plugin) Process(op Op, input, existing map[string]any) (map[string]any, map[string]any, *Error) {
	return p.entity.Process(op, input, existing)
}

func httpProtocols() *Field {
	return &Field{Name: "protocols", Type: TypeSet, Required: true, Default: anys("grpc", "grpcs", "http", "https"),
		Elements: &Field{Type: TypeString, Required: true, OneOf: anys("grpc", "grpcs", "http", "https")}}
}

func allProtocols(def ...string) *Field {
	return &Field{Name: "protocols", Type: TypeSet, Required: true, Default: anys(def...),
		Elements: &Field{Type: TypeString, Required: true, OneOf: anys(routeProtocols...)}}
}

// pluginBaseFields are the fields of the plugins entity; config is the
// generic (abstract) record here and replaced per plugin.
func pluginBaseFields(p *Plugin) []*Field {
	scope := func(name, ref string, forbidden bool) *Field {
		f := foreign(name, ref, false, "cascade")
		f.EqNull = forbidden
		return f
	}
	config := &Field{Name: "config", Type: TypeRecord, Required: true}
	protocols := allProtocols("grpc", "grpcs", "http", "https")
	var noConsumer, noRoute, noService bool
	if p != nil {
		config.Fields = p.Config
		config.Check = func(v any) string {
			if p.ConfigCheck == nil {
				return ""
			}
			return p.ConfigCheck(v.(map[string]any))
		}
		if p.Protocols != nil {
			protocols = p.Protocols
		}
		noConsumer, noRoute, noService = p.NoConsumer, p.NoRoute, p.NoService
	}
	access := func(name string) *Field {
		f := record(name, &Field{Name: "access", Type: TypeArray, Elements: &Field{Type: TypeString}})
		f.Required = false
		return f
	}
	ordering := record("ordering", access("before"), access("after"))
	ordering.Required = false
	ordering.NullDefault = true
	return []*Field{
		idField(),
		{Name: "name", Type: TypeString, Required: true},
		{Name: "instance_name", Type: TypeString, Unique: true, Check: checkName},
		createdAt(), updatedAt(),
		scope("route", "routes", noRoute),
		scope("service", "services", noService),
		scope("consumer", "consumers", noConsumer),
		consumerGroupScope(noConsumer),
		config,
		protocols,
		boolean("enabled", true),
		tagsField(),
		ordering,
	}
}

// consumerGroupScope is Kong Enterprise's plugin scope by consumer group. Kong's community edition
// has no such field, so its UNIQUE violations name it only when it is set.
func consumerGroupScope(forbidden bool) *Field {
	f := foreign("consumer_group", "consumer_groups", false, "cascade")
	f.EqNull = forbidden
	f.KeyOmitsNull = true
	return f
}

var pluginUnique = [][]string{{"name", "route", "service", "consumer", "consumer_group"}}

func registerPluginsEntity() {
	register(&Entity{
		Name: "plugins", AdminPath: "plugins", EndpointKey: "instance_name",
		Fields: pluginBaseFields(nil),
		Unique: pluginUnique,
	})
	e := entityByName["plugins"]
	e.Unique = append([][]string{{"instance_name"}}, pluginUnique...)
	for _, p := range bundledPlugins() {
		p.Version = KongVersion
		pe := &Entity{
			Name: "plugins", AdminPath: "plugins", EndpointKey: "instance_name",
			Fields: pluginBaseFields(p),
			Unique: e.Unique,
			Refs:   e.Refs,
			Checks: p.Checks,
			plugin: p,
		}
		p.entity = pe
		pluginList = append(pluginList, p)
		pluginByName[p.Name] = p
	}
	sort.Slice(pluginList, func(i, j int) bool { return pluginList[i].Name < pluginList[j].Name })
}

// UnknownPluginMessage is the message for a plugin name that is not
// available. It starts as Kong's does ("plugin 'x' not enabled"); where Kong
// goes on to name its 'plugins' setting, which Gantry does not have, it lists
// the plugins Gantry bundles.
func UnknownPluginMessage(name string) string {
	names := make([]string, 0, len(pluginList))
	for _, p := range pluginList {
		names = append(names, p.Name)
	}
	return fmt.Sprintf("plugin '%s' not enabled; the bundled plugins are: %s", name, strings.Join(names, ", "))
}

// processPlugin dispatches a plugins write to the named plugin's schema.
func processPlugin(op Op, input, existing map[string]any) (map[string]any, map[string]any, *Error) {
	nameV, ok := input["name"]
	if !ok && op == OpUpdate && existing != nil {
		nameV = existing["name"]
	}
	if nameV == nil {
		return nil, nil, SchemaViolation(map[string]any{"name": "required field missing"})
	}
	name, ok := nameV.(string)
	if !ok {
		return nil, nil, SchemaViolation(map[string]any{"name": "expected a string"})
	}
	p, ok := pluginByName[name]
	if !ok {
		return nil, nil, SchemaViolation(map[string]any{"name": UnknownPluginMessage(name)})
	}
	return p.entity.Process(op, input, existing)
}
