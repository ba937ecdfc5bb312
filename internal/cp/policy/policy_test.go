package policy

import (
	"slices"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/config/schema"
)

const (
	g1     = "11111111-1111-4111-8111-111111111111"
	g2     = "22222222-2222-4222-8222-222222222222"
	region = "us"
)

func on(role, group string) Subject {
	return Subject{Grants: []Grant{{Role: role, GroupID: group, Region: region}}}
}

func TestDecide(t *testing.T) {
	for _, tt := range []struct {
		name    string
		s       Subject
		req     Request
		allowed bool
		visible bool
		need    string
	}{
		{"org admin writes anything", Subject{OrgAdmin: true}, Request{Action: Write, GroupID: g2, Region: region, EntityType: TypeConfig}, true, true, ""},
		{"org admin manages identity", Subject{OrgAdmin: true}, Request{Action: ManageIdentity}, true, true, ""},
		{"nobody sees nothing", Subject{}, Request{Action: Read, GroupID: g1, Region: region}, false, false, "read this runtime group"},
		{"viewer reads its group", on("Viewer", g1), Request{Action: Read, GroupID: g1, Region: region}, true, true, ""},
		{"viewer does not see another group", on("Viewer", g1), Request{Action: Read, GroupID: g2, Region: region}, false, false, "read this runtime group"},
		{"viewer cannot write", on("Viewer", g1), Request{Action: Write, GroupID: g1, Region: region, EntityType: "routes"}, false, true, "write routes"},
		{"viewer of another region", Subject{Grants: []Grant{{Role: "Viewer", GroupID: g1, Region: "eu"}}}, Request{Action: Read, GroupID: g1, Region: region}, false, false, "read this runtime group"},
		{"wildcard viewer reads every group", on("Viewer", Wildcard), Request{Action: Read, GroupID: g2, Region: region}, true, true, ""},
		{"admin writes config", on("Admin", g1), Request{Action: Write, GroupID: g1, Region: region, EntityType: TypeConfig}, true, true, ""},
		{"admin of g1 does not see g2", on("Admin", g1), Request{Action: Write, GroupID: g2, Region: region, EntityType: "routes"}, false, false, "read this runtime group"},
		{"route admin writes routes", on("Route Admin", g1), Request{Action: Write, GroupID: g1, Region: region, EntityType: "routes"}, true, true, ""},
		{"route admin cannot write services", on("Route Admin", g1), Request{Action: Write, GroupID: g1, Region: region, EntityType: "services"}, false, true, "write services"},
		{"route admin cannot delete the group", on("Route Admin", g1), Request{Action: Write, GroupID: g1, Region: region, EntityType: TypeGroup}, false, true, "write runtime_group"},
		{"consumer admin writes credentials", on("Consumer Admin", g1), Request{Action: Write, GroupID: g1, Region: region, EntityType: "keyauth_credentials"}, true, true, ""},
		{"consumer admin writes membership", on("Consumer Admin", g1), Request{Action: Write, GroupID: g1, Region: region, EntityType: "consumer_group_consumers"}, true, true, ""},
		{"certificate admin writes snis", on("Certificate Admin", g1), Request{Action: Write, GroupID: g1, Region: region, EntityType: "snis"}, true, true, ""},
		{"certificate admin cannot pin cluster certificates", on("Certificate Admin", g1), Request{Action: Write, GroupID: g1, Region: region, EntityType: TypeClusterCertificates}, false, true, "write dp_client_certificates"},
		{"upstream admin writes targets", on("Upstream Admin", g1), Request{Action: Write, GroupID: g1, Region: region, EntityType: "targets"}, true, true, ""},
		{"creator does not see groups", on("Creator", Wildcard), Request{Action: Read, GroupID: g1, Region: region}, false, false, "read this runtime group"},
		{"creator creates", on("Creator", Wildcard), Request{Action: CreateGroup, Region: region}, true, true, ""},
		{"viewer cannot create", on("Viewer", Wildcard), Request{Action: CreateGroup, Region: region}, false, true, "create runtime groups"},
		{"runtime admin creates", on("Admin", Wildcard), Request{Action: CreateGroup, Region: region}, true, true, ""},
		{"admin of one group cannot create", on("Admin", g1), Request{Action: CreateGroup, Region: region}, false, true, "create runtime groups"},
		{"audit viewer reads the log", Subject{Grants: []Grant{{Role: "Audit Viewer", GroupID: Wildcard, Region: Wildcard}}}, Request{Action: ReadAudit}, true, true, ""},
		{"admin cannot read the log", on("Admin", Wildcard), Request{Action: ReadAudit}, false, true, "read the audit log"},
		{"admin cannot manage identity", on("Admin", Wildcard), Request{Action: ManageIdentity}, false, true, "manage_identity"},
		{"wildcard viewer sees the fleet", on("Viewer", Wildcard), Request{Action: ViewFleet, Region: region}, true, true, ""},
		{"one-group admin does not see the fleet", on("Admin", g1), Request{Action: ViewFleet, Region: region}, false, true, "view the control plane's processes"},
		{"unknown role grants nothing", on("Emperor", g1), Request{Action: Read, GroupID: g1, Region: region}, false, false, "read this runtime group"},
		{"union of roles", Subject{Grants: []Grant{{Role: "Viewer", GroupID: Wildcard, Region: Wildcard}, {Role: "Route Admin", GroupID: g1, Region: region}}},
			Request{Action: Write, GroupID: g1, Region: region, EntityType: "routes"}, true, true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(&tt.s, tt.req)
			if d.Allowed != tt.allowed || d.Visible != tt.visible || d.Need != tt.need {
				t.Errorf("Decide = %+v, want allowed=%v visible=%v need=%q", d, tt.allowed, tt.visible, tt.need)
			}
			if !d.Allowed && len(d.Roles) == 0 {
				t.Errorf("a refusal names no role that would grant %q", d.Need)
			}
		})
	}
}

func TestRefusalNamesGrantingRoles(t *testing.T) {
	s := on("Viewer", g1)
	d := Decide(&s, Request{Action: Write, GroupID: g1, Region: region, EntityType: "routes"})
	for _, want := range []string{"Admin", "Route Admin", "Deployer"} {
		if !slices.Contains(d.Roles, want) {
			t.Errorf("roles granting write routes = %v, missing %s", d.Roles, want)
		}
	}
	if slices.Contains(d.Roles, "Viewer") || slices.Contains(d.Roles, "Gateway Service Admin") {
		t.Errorf("roles granting write routes = %v, lists roles that do not", d.Roles)
	}
}

func TestVisibleGroups(t *testing.T) {
	s := Subject{Grants: []Grant{
		{Role: "Viewer", GroupID: g1, Region: region},
		{Role: "Route Admin", GroupID: g1, Region: region},
		{Role: "Creator", GroupID: g2, Region: region},
		{Role: "Admin", GroupID: g2, Region: "eu"},
	}}
	if got := s.VisibleGroups(region); !slices.Equal(got, []string{g1}) {
		t.Errorf("VisibleGroups = %v, want [%s]", got, g1)
	}
	if s.SeesAll(region) {
		t.Error("SeesAll with no wildcard grant")
	}
	w := on("Viewer", Wildcard)
	if !w.SeesAll(region) {
		t.Error("a wildcard viewer does not see all")
	}
}

func TestLookupRole(t *testing.T) {
	for _, tt := range []struct {
		name, et string
		ok       bool
	}{
		{"Viewer", "Runtime Groups", true},
		{"viewer", "Control Planes", true},
		{"Route Admin", "control planes", true},
		{"Audit Viewer", "Audit Logs", true},
		{"Audit Viewer", "Runtime Groups", false},
		{"Emperor", "Runtime Groups", false},
		{"Viewer", "Portals", false},
	} {
		if _, ok := LookupRole(tt.name, tt.et); ok != tt.ok {
			t.Errorf("LookupRole(%q, %q) ok = %v, want %v", tt.name, tt.et, ok, tt.ok)
		}
	}
}

func TestAdminAPI(t *testing.T) {
	for _, tt := range []struct {
		method, path string
		action       Action
		entity       string
	}{
		{"GET", "/services", Read, ""},
		{"HEAD", "/routes/r1", Read, ""},
		{"OPTIONS", "/plugins", Read, ""},
		{"POST", "/services", Write, "services"},
		{"PATCH", "/services/s1", Write, "services"},
		{"DELETE", "/services/s1", Write, "services"},
		{"POST", "/services/s1/routes", Write, "routes"},
		{"PUT", "/services/s1/routes/r1", Write, "routes"},
		{"POST", "/services/s1/plugins", Write, "plugins"},
		{"PATCH", "/routes/r1/service", Write, "services"},
		{"POST", "/consumers/c1/key-auth", Write, "keyauth_credentials"},
		{"DELETE", "/consumers/c1/acls/a1", Write, "acls"},
		{"POST", "/consumers/c1/jwt", Write, "jwt_secrets"},
		{"POST", "/consumers/c1/consumer_groups", Write, "consumer_group_consumers"},
		{"POST", "/consumer_groups/g/consumers", Write, "consumer_group_consumers"},
		{"POST", "/consumer_groups/g/plugins", Write, "plugins"},
		{"PUT", "/consumer_groups/g", Write, "consumer_groups"},
		{"POST", "/upstreams/u/targets", Write, "targets"},
		{"POST", "/certificates/c/snis", Write, "snis"},
		{"POST", "/ca_certificates", Write, "ca_certificates"},
		{"POST", "/key-sets", Write, "key_sets"},
		{"POST", "/key-sets/k/keys", Write, "keys"},
		{"PUT", "/vaults/v", Write, "vaults"},
		{"POST", "/config", Write, TypeConfig},
		{"POST", "/", Write, TypeConfig},
		{"POST", "/schemas/services/validate", Read, ""},
		{"POST", "/schemas/plugins/validate", Read, ""},
		{"POST", "/nonsense", Write, TypeConfig},
		{"POST", "/services/s1/nonsense", Write, TypeConfig},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			var segs []string
			for _, s := range strings.Split(tt.path, "/") {
				if s != "" {
					segs = append(segs, s)
				}
			}
			a, e := AdminAPI(tt.method, segs)
			if a != tt.action || e != tt.entity {
				t.Errorf("AdminAPI = %s %q, want %s %q", a, e, tt.action, tt.entity)
			}
		})
	}
	// Every role's writable entity types exist: a typo would grant nothing silently.
	known := map[string]bool{"*": true, TypeGroup: true, TypeNodes: true, TypeClusterCertificates: true, TypeConfig: true, "consumer_group_consumers": true}
	for _, r := range Roles {
		for _, w := range r.Writes {
			if !known[w] {
				if _, ok := schema.Lookup(w); !ok {
					t.Errorf("role %s writes %q, which is no entity type", r.Name, w)
				}
			}
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	s := Subject{Grants: []Grant{{Role: "Viewer", GroupID: Wildcard, Region: Wildcard}, {Role: "Route Admin", GroupID: g1, Region: region}}}
	req := Request{Action: Write, GroupID: g1, Region: region, EntityType: "routes"}
	b.ReportAllocs()
	for b.Loop() {
		if !Decide(&s, req).Allowed {
			b.Fatal("refused")
		}
	}
}

func TestDecideAllocatesNothingWhenAllowed(t *testing.T) {
	s := on("Route Admin", g1)
	req := Request{Action: Write, GroupID: g1, Region: region, EntityType: "routes"}
	if n := testing.AllocsPerRun(100, func() { Decide(&s, req) }); n != 0 {
		t.Errorf("Decide allocates %v times per allowed request", n)
	}
}
