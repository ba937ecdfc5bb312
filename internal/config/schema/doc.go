// Package schema is the single description of Gantry's gateway entities and
// bundled plugins, in Kong Gateway 3.x terms: fields, types, defaults,
// checks, endpoint keys, uniqueness and references.
//
// The same description drives validation and defaulting (Entity.Process),
// the /schemas endpoints (KongSchema, JSONSchema) and Kong-format errors
// (Error and its constructors), so the defaults a client reads from
// /schemas are exactly the ones the server fills in. Everything here is
// built at package init and read-only afterwards; it is safe for
// concurrent use.
package schema
