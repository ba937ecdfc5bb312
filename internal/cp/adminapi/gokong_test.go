package adminapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/kong/go-kong/kong"
)

// TestGoKong drives a group's Admin API with go-kong, an independent Kong client: a full
// configuration with every entity type is created, read back, updated and deleted, and a second
// group stays untouched.
func TestGoKong(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		client := func(group string) *kong.Client {
			hc := kong.HTTPClientWithHeaders(e.srv.Client(), http.Header{"Authorization": {"Bearer " + e.token}})
			c, err := kong.NewClient(kong.String(e.srv.URL+e.base(group)), hc)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		k := client(e.group)
		must := func(what string, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}

		root, err := k.Root(ctx)
		must("root", err)
		if _, err := kong.ParseSemanticVersion(kong.VersionFromInfo(root)); err != nil {
			t.Fatalf("version %v: %v", root["version"], err)
		}

		// Create: every entity type, some with client-generated ids (PUT), as decK does.
		svc, err := k.Services.Create(ctx, &kong.Service{ID: kong.String("5c1b4f4e-0000-4000-8000-000000000001"), Name: kong.String("svc"), Host: kong.String("h.test"), Path: kong.String("/api")})
		must("service", err)
		route, err := k.Routes.Create(ctx, &kong.Route{Name: kong.String("r"), Paths: kong.StringSlice("/r"), Service: &kong.Service{ID: svc.ID}})
		must("route", err)
		consumer, err := k.Consumers.Create(ctx, &kong.Consumer{Username: kong.String("alice"), CustomID: kong.String("a-1")})
		must("consumer", err)
		cg, err := k.ConsumerGroups.Create(ctx, &kong.ConsumerGroup{Name: kong.String("gold")})
		must("consumer group", err)
		_, err = k.ConsumerGroupConsumers.Create(ctx, cg.Name, consumer.Username)
		must("membership", err)
		_, err = k.Plugins.Create(ctx, &kong.Plugin{Name: kong.String("rate-limiting"), Service: &kong.Service{ID: svc.ID}, Config: kong.Configuration{"minute": 10}})
		must("service plugin", err)
		cgPlugin, err := k.Plugins.Create(ctx, &kong.Plugin{Name: kong.String("rate-limiting"), ConsumerGroup: &kong.ConsumerGroup{ID: cg.ID}, Config: kong.Configuration{"minute": 5}})
		must("consumer group plugin", err)
		_, err = k.Plugins.Create(ctx, &kong.Plugin{Name: kong.String("key-auth"), Route: &kong.Route{ID: route.ID}})
		must("route plugin", err)
		up, err := k.Upstreams.Create(ctx, &kong.Upstream{Name: kong.String("up")})
		must("upstream", err)
		target, err := k.Targets.Create(ctx, up.ID, &kong.Target{Target: kong.String("10.0.0.1:8080"), Weight: kong.Int(50)})
		must("target", err)
		cert, err := k.Certificates.Create(ctx, &kong.Certificate{Cert: kong.String(pki.cert), Key: kong.String(pki.key), SNIs: kong.StringSlice("a.test")})
		must("certificate", err)
		_, err = k.SNIs.Create(ctx, &kong.SNI{Name: kong.String("b.test"), Certificate: &kong.Certificate{ID: cert.ID}})
		must("sni", err)
		ca, err := k.CACertificates.Create(ctx, &kong.CACertificate{Cert: kong.String(pki.ca)})
		must("ca certificate", err)
		vault, err := k.Vaults.Create(ctx, &kong.Vault{Name: kong.String("env"), Prefix: kong.String("my-env")})
		must("vault", err)
		ks, err := k.KeySets.Create(ctx, &kong.KeySet{Name: kong.String("ks")})
		must("key set", err)
		key, err := k.Keys.Create(ctx, &kong.Key{Name: kong.String("k"), KID: kong.String("k"), JWK: kong.String(`{"kid":"k","kty":"oct"}`), Set: &kong.KeySet{ID: ks.ID}})
		must("key", err)
		ka, err := k.KeyAuths.Create(ctx, consumer.ID, &kong.KeyAuth{Key: kong.String("secret-key")})
		must("key-auth", err)
		ba, err := k.BasicAuths.Create(ctx, consumer.ID, &kong.BasicAuth{Username: kong.String("alice"), Password: kong.String("pw")})
		must("basic-auth", err)
		jwt, err := k.JWTAuths.Create(ctx, consumer.ID, &kong.JWTAuth{Key: kong.String("jwt-key")})
		must("jwt", err)
		hm, err := k.HMACAuths.Create(ctx, consumer.ID, &kong.HMACAuth{Username: kong.String("alice-hmac")})
		must("hmac-auth", err)
		acl, err := k.ACLs.Create(ctx, consumer.ID, &kong.ACLGroup{Group: kong.String("admins")})
		must("acl", err)

		// Read back.
		gotSvc, err := k.Services.Get(ctx, kong.String("svc"))
		must("get service", err)
		if *gotSvc.ID != *svc.ID || *gotSvc.Port != 80 || *gotSvc.Protocol != "http" || *gotSvc.Retries != 5 {
			t.Errorf("service %+v", gotSvc)
		}
		group, err := k.ConsumerGroups.Get(ctx, kong.String("gold"))
		must("get consumer group", err)
		if len(group.Consumers) != 1 || *group.Consumers[0].ID != *consumer.ID || len(group.Plugins) != 1 || *group.Plugins[0].ID != *cgPlugin.ID {
			t.Errorf("consumer group %+v", group)
		}
		members, err := k.ConsumerGroupConsumers.ListAll(ctx, cg.Name)
		must("members", err)
		if len(members) != 1 {
			t.Errorf("members %d", len(members))
		}
		gotCert, err := k.Certificates.Get(ctx, cert.ID)
		must("get certificate", err)
		if len(gotCert.SNIs) != 2 || *gotCert.SNIs[0] != "a.test" || *gotCert.SNIs[1] != "b.test" {
			t.Errorf("certificate snis %v", gotCert.SNIs)
		}
		targets, err := k.Targets.ListAll(ctx, up.Name)
		must("targets", err)
		if len(targets) != 1 || *targets[0].ID != *target.ID || *targets[0].Weight != 50 {
			t.Errorf("targets %+v", targets)
		}
		counts := map[string]func() (int, error){
			"services":    func() (int, error) { l, err := k.Services.ListAll(ctx); return len(l), err },
			"routes":      func() (int, error) { l, err := k.Routes.ListAll(ctx); return len(l), err },
			"plugins":     func() (int, error) { l, err := k.Plugins.ListAll(ctx); return len(l), err },
			"consumers":   func() (int, error) { l, err := k.Consumers.ListAll(ctx); return len(l), err },
			"snis":        func() (int, error) { l, err := k.SNIs.ListAll(ctx); return len(l), err },
			"key-auths":   func() (int, error) { l, err := k.KeyAuths.ListAll(ctx); return len(l), err },
			"basic-auths": func() (int, error) { l, err := k.BasicAuths.ListAll(ctx); return len(l), err },
			"jwts":        func() (int, error) { l, err := k.JWTAuths.ListAll(ctx); return len(l), err },
			"hmac-auths":  func() (int, error) { l, err := k.HMACAuths.ListAll(ctx); return len(l), err },
			"acls":        func() (int, error) { l, err := k.ACLs.ListAll(ctx); return len(l), err },
			"keys":        func() (int, error) { l, err := k.Keys.ListAll(ctx); return len(l), err },
			"vaults":      func() (int, error) { l, err := k.Vaults.ListAll(ctx); return len(l), err },
		}
		want := map[string]int{"services": 1, "routes": 1, "plugins": 3, "consumers": 1, "snis": 2, "key-auths": 1,
			"basic-auths": 1, "jwts": 1, "hmac-auths": 1, "acls": 1, "keys": 1, "vaults": 1}
		for name, count := range counts {
			n, err := count()
			must("list "+name, err)
			if n != want[name] {
				t.Errorf("%s: %d, want %d", name, n, want[name])
			}
		}
		if c, err := k.KeyAuths.Get(ctx, consumer.ID, kong.String("secret-key")); err != nil || *c.ID != *ka.ID {
			t.Errorf("key-auth by key: %v %v", c, err)
		}

		// Update.
		svc.Retries = kong.Int(2)
		upd, err := k.Services.Update(ctx, svc)
		must("update service", err)
		if *upd.Retries != 2 {
			t.Errorf("retries %d", *upd.Retries)
		}
		consumer.CustomID = kong.String("a-2")
		_, err = k.Consumers.Update(ctx, consumer)
		must("update consumer", err)
		if c, err := k.Consumers.Get(ctx, kong.String("alice")); err != nil || *c.CustomID != "a-2" {
			t.Errorf("consumer after update %v %v", c, err)
		}
		up.Slots = kong.Int(100)
		_, err = k.Upstreams.Update(ctx, up)
		must("update upstream", err)
		cgPlugin.Config["minute"] = 7
		_, err = k.Plugins.Update(ctx, cgPlugin)
		must("update plugin", err)
		target.Weight = kong.Int(10)
		_, err = k.Targets.Update(ctx, up.ID, target.ID, target)
		must("update target", err)

		// Delete, children first.
		must("delete acl", k.ACLs.Delete(ctx, consumer.ID, acl.ID))
		must("delete hmac", k.HMACAuths.Delete(ctx, consumer.ID, hm.ID))
		must("delete jwt", k.JWTAuths.Delete(ctx, consumer.ID, jwt.ID))
		must("delete basic-auth", k.BasicAuths.Delete(ctx, consumer.ID, ba.ID))
		must("delete key-auth", k.KeyAuths.Delete(ctx, consumer.ID, ka.ID))
		must("delete member", k.ConsumerGroupConsumers.Delete(ctx, cg.Name, consumer.Username))
		plugins, err := k.Plugins.ListAll(ctx)
		must("plugins", err)
		for _, p := range plugins {
			must("delete plugin", k.Plugins.Delete(ctx, p.ID))
		}
		must("delete consumer group", k.ConsumerGroups.Delete(ctx, cg.ID))
		must("delete consumer", k.Consumers.Delete(ctx, consumer.ID))
		must("delete route", k.Routes.Delete(ctx, route.ID))
		must("delete service", k.Services.Delete(ctx, svc.ID))
		must("delete target", k.Targets.Delete(ctx, up.ID, target.ID))
		must("delete upstream", k.Upstreams.Delete(ctx, up.ID))
		must("delete key", k.Keys.Delete(ctx, key.ID))
		must("delete key set", k.KeySets.Delete(ctx, ks.ID))
		must("delete vault", k.Vaults.Delete(ctx, vault.ID))
		must("delete ca certificate", k.CACertificates.Delete(ctx, ca.ID))
		must("delete certificate", k.Certificates.Delete(ctx, cert.ID))
		for name, count := range counts {
			n, err := count()
			must("list "+name, err)
			if n != 0 {
				t.Errorf("%s left after deletes: %d", name, n)
			}
		}
		if _, err := k.Services.Get(ctx, kong.String("svc")); !kong.IsNotFoundErr(err) {
			t.Errorf("deleted service: %v", err)
		}

		// The second group never saw any of it.
		k2 := client(e.group2)
		if l, err := k2.Services.ListAll(ctx); err != nil || len(l) != 0 {
			t.Errorf("second group services %v %v", l, err)
		}
		if l, err := k2.Consumers.ListAll(ctx); err != nil || len(l) != 0 {
			t.Errorf("second group consumers %v %v", l, err)
		}
		if r := e.revision(e.group2); r != 0 {
			t.Errorf("second group revision %d", r)
		}
	})
}
