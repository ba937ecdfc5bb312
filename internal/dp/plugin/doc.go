// Package plugin is the runtime's plugin model: the per-request context
// ([Ctx]), the phase interfaces a plugin may implement, the registry of
// plugin factories, the compiler that turns configured plugin entities into
// per-route chains ([Compile], [Set], [Chain]) with Kong's scoping precedence
// and execution order, the compile-time environment ([Env], [MemEnv]) and
// vault reference resolution.
//
// Lifecycle of a request, as the proxy drives it:
//
//	c := plugin.AcquireCtx(r)        // pooled; fill ClientIP, RouteID, ...
//	set.Rewrite(c)                   // global plugins, before routing
//	chain := set.Route(routeID)      // precomputed, no search
//	chain.Access(c)                  // collects plugins; may short-circuit
//	if !c.Exited() { ...call upstream, fill c.Response... }
//	chain.HeaderFilter(c)
//	if chain.WantsBody(c) { ...buffer c.Response.Body...; chain.BodyFilter(c) }
//	...write the response...
//	chain.Log(c)
//	plugin.ReleaseCtx(c)
//
// [Handler] is a small harness that runs exactly these steps in front of an
// [net/http.Handler] upstream, so plugins are testable with httptest.
//
// Plugin instances are built once per configuration generation ("compile
// time"); every configuration error surfaces from the factory, never while a
// request is served. Instances are shared by all concurrent requests and must
// be safe for concurrent use.
package plugin
