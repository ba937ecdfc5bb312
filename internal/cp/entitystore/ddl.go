package entitystore

import (
	"fmt"
	"strings"

	"github.com/gantry-gw/gantry/internal/config/schema"
)

// The tables of entity types are derived from their schemas by one rule, so that the store code
// and the migrations agree by construction:
//
//   - table name = the entity's DAO name; primary key (group_id, id), so two groups may hold
//     entities with the same id (a backup restored into a second group keeps its ids);
//   - a single-field uniqueness constraint on field f → column u_f, UNIQUE (group_id, u_f);
//   - a composite uniqueness constraint number i → column ck_i holding the canonical encoding of
//     its values (NULLs included, as Kong's cache keys treat them), UNIQUE (group_id, ck_i);
//   - a foreign key f → column f_id and FOREIGN KEY (group_id, f_id) REFERENCES parent
//     (group_id, id), ON DELETE CASCADE or NO ACTION (checked at the end of the statement, so that
//     deleting a whole runtime group, which cascades everywhere at once, never trips it);
//   - tags → a column ",a,b," for substring tag filters; doc → the entity document as JSON.
//
// TestMigrationsMatchSchemas applies every migration to an empty database and checks the
// catalogue it leaves against this rule, so a schema change needs a new migration; DDL renders the
// rule's statements for a table that is missing altogether.

// uniqueColumns returns the single-field unique columns of e in field order.
func uniqueColumns(e *schema.Entity) []string {
	var out []string
	for _, u := range e.Unique {
		if len(u) == 1 && e.Field(u[0]) != nil && e.Field(u[0]).Type != schema.TypeForeign {
			out = append(out, u[0])
		}
	}
	return out
}

// compositeKeys returns the uniqueness constraints stored as ck_i columns: those over several
// fields or over a foreign key.
func compositeKeys(e *schema.Entity) [][]string {
	var out [][]string
	for _, u := range e.Unique {
		if len(u) > 1 || e.Field(u[0]) == nil || e.Field(u[0]).Type == schema.TypeForeign {
			out = append(out, u)
		}
	}
	return out
}

// DDL returns the CREATE statements of every entity table, for a dialect ("sqlite" or
// "postgres"; they share the statements today).
func DDL(dialect string) string {
	var b strings.Builder
	b.WriteString("-- Generated from internal/config/schema by the rule in internal/cp/entitystore/ddl.go;\n")
	b.WriteString("-- regenerate with: go test ./internal/cp/entitystore -run TestMigrationsMatchSchemas -update\n")
	for _, e := range schema.Entities() {
		fmt.Fprintf(&b, "\nCREATE TABLE %s (\n", q(e.Name))
		lines := []string{
			"    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE",
			"    id TEXT NOT NULL",
		}
		for _, f := range uniqueColumns(e) {
			lines = append(lines, fmt.Sprintf("    %s TEXT", q("u_"+f)))
		}
		for i := range compositeKeys(e) {
			lines = append(lines, fmt.Sprintf("    %s TEXT NOT NULL", q(fmt.Sprintf("ck_%d", i))))
		}
		for _, r := range e.Refs {
			lines = append(lines, fmt.Sprintf("    %s TEXT", q(r.Field+"_id")))
		}
		lines = append(lines, "    tags TEXT", "    doc TEXT NOT NULL", "    PRIMARY KEY (group_id, id)")
		for _, f := range uniqueColumns(e) {
			lines = append(lines, fmt.Sprintf("    UNIQUE (group_id, %s)", q("u_"+f)))
		}
		for i := range compositeKeys(e) {
			lines = append(lines, fmt.Sprintf("    UNIQUE (group_id, %s)", q(fmt.Sprintf("ck_%d", i))))
		}
		for _, r := range e.Refs {
			action := "NO ACTION"
			if r.OnDelete == "cascade" {
				action = "CASCADE"
			}
			lines = append(lines, fmt.Sprintf("    FOREIGN KEY (group_id, %s) REFERENCES %s (group_id, id) ON DELETE %s", q(r.Field+"_id"), q(r.Entity), action))
		}
		b.WriteString(strings.Join(lines, ",\n"))
		b.WriteString("\n);\n")
		for _, r := range e.Refs {
			fmt.Fprintf(&b, "CREATE INDEX %s ON %s (group_id, %s);\n", q(e.Name+"_"+r.Field), q(e.Name), q(r.Field+"_id"))
		}
	}
	b.WriteString(`
CREATE TABLE consumer_group_consumers (
    group_id TEXT NOT NULL REFERENCES runtime_groups(id) ON DELETE CASCADE,
    consumer_group_id TEXT NOT NULL,
    consumer_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, consumer_group_id, consumer_id),
    FOREIGN KEY (group_id, consumer_group_id) REFERENCES "consumer_groups" (group_id, id) ON DELETE CASCADE,
    FOREIGN KEY (group_id, consumer_id) REFERENCES "consumers" (group_id, id) ON DELETE CASCADE
);
CREATE INDEX consumer_group_consumers_consumer ON consumer_group_consumers (group_id, consumer_id);
`)
	return b.String()
}

// q quotes an identifier; some entity columns (key, set) are SQL keywords.
func q(name string) string { return `"` + name + `"` }
