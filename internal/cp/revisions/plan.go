package revisions

import "github.com/gantry-gw/gantry/internal/cp/entitystore"

// DiffSnapshots returns, in the shape of Diff.Entities, what changes from configuration from to
// configuration to: per entity, added, removed, or changed with the changed fields. Other writers
// of whole configurations (declarative import) use it to show their plan.
func DiffSnapshots(from, to entitystore.Snapshot) []EntityDiff {
	return diff(newModel(from), newModel(to))
}
