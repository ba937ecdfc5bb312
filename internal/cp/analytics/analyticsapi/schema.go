package analyticsapi

import "github.com/gantry-gw/gantry/internal/config/schema"

// schemaLookup returns the entity schema of a collection.
func schemaLookup(collection string) (*schema.Entity, bool) { return schema.Lookup(collection) }
