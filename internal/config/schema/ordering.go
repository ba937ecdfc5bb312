package schema

import (
	"fmt"
	"sort"
	"strings"
)

// CheckOrdering checks the dynamic ordering of a group's plugins (plugin
// documents as Process returns them): ordering is refused on
// consumer-scoped plugins, and the before/after access edges together must
// not form a cycle, since the data plane could not order such a chain.
// The error names the cycle, e.g. "plugin ordering cycle in access phase:
// cors -> key-auth -> cors".
func CheckOrdering(plugins []map[string]any) error {
	edges := map[string]map[string]bool{}
	add := func(from, to string) {
		if edges[from] == nil {
			edges[from] = map[string]bool{}
		}
		edges[from][to] = true
	}
	for _, p := range plugins {
		name, _ := p["name"].(string)
		ord, ok := p["ordering"].(map[string]any)
		if !ok {
			continue
		}
		if p["consumer"] != nil {
			return fmt.Errorf("plugin %q: dynamic ordering is not supported on consumer-scoped plugins", name)
		}
		for _, dir := range []string{"before", "after"} {
			phases, _ := ord[dir].(map[string]any)
			list, _ := phases["access"].([]any)
			for _, o := range list {
				other, _ := o.(string)
				if dir == "before" {
					add(name, other)
				} else {
					add(other, name)
				}
			}
		}
	}
	const (
		unvisited = iota
		onStack
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(n string) []string
	visit = func(n string) []string {
		state[n] = onStack
		stack = append(stack, n)
		for _, next := range sortedKeys(edges[n]) {
			switch state[next] {
			case onStack:
				i := len(stack) - 1
				for stack[i] != next {
					i--
				}
				return append(append([]string(nil), stack[i:]...), next)
			case unvisited:
				if c := visit(next); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		return nil
	}
	names := sortedKeys(edges)
	sort.Strings(names)
	for _, n := range names {
		if state[n] == unvisited {
			if c := visit(n); c != nil {
				return fmt.Errorf("plugin ordering cycle in access phase: %s", strings.Join(c, " -> "))
			}
		}
	}
	return nil
}
