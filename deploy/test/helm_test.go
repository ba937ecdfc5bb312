package deploytest

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

var chartDir = filepath.Join(repoRoot, "deploy", "helm", "gantry")

const namespace = "gateways"

// rendered is a chart's output decoded into the Kubernetes API types.
type rendered struct {
	deployments  map[string]*appsv1.Deployment
	daemonSets   map[string]*appsv1.DaemonSet
	services     map[string]*corev1.Service
	secrets      map[string]*corev1.Secret
	pvcs         map[string]*corev1.PersistentVolumeClaim
	pdbs         map[string]*policyv1.PodDisruptionBudget
	ingresses    map[string]*networkingv1.Ingress
	notes        string
	objectsTotal int
}

// render does what `helm template` does (release "gantry" in namespace "gateways") with the
// chart's values overlaid by valuesYAML, and decodes every object strictly: an unknown or
// misplaced field is an error, as is a kind the chart is not expected to make.
func render(t *testing.T, valuesYAML string) (*rendered, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := chartutil.ReadValues([]byte(valuesYAML))
	if err != nil {
		t.Fatal(err)
	}
	top, err := chartutil.ToRenderValues(chrt, vals, chartutil.ReleaseOptions{Name: "gantry", Namespace: namespace, Revision: 1, IsInstall: true}, nil)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(chrt, top)
	if err != nil {
		return nil, err
	}
	r := &rendered{deployments: map[string]*appsv1.Deployment{}, daemonSets: map[string]*appsv1.DaemonSet{},
		services: map[string]*corev1.Service{}, secrets: map[string]*corev1.Secret{}, pvcs: map[string]*corev1.PersistentVolumeClaim{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, ingresses: map[string]*networkingv1.Ingress{}}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range files {
			if !yield(n) {
				return
			}
		}
	})
	for _, name := range names {
		text := files[name]
		if strings.HasSuffix(name, "NOTES.txt") {
			r.notes = text
			continue
		}
		for doc := range strings.SplitSeq(text, "\n---") {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Metadata   struct {
					Name      string `json:"name"`
					Namespace string `json:"namespace"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s: %v\n%s", name, err, doc)
			}
			var obj any
			key := meta.APIVersion + "/" + meta.Kind
			switch key {
			case "apps/v1/Deployment":
				o := &appsv1.Deployment{}
				r.deployments[meta.Metadata.Name], obj = o, o
			case "apps/v1/DaemonSet":
				o := &appsv1.DaemonSet{}
				r.daemonSets[meta.Metadata.Name], obj = o, o
			case "v1/Service":
				o := &corev1.Service{}
				r.services[meta.Metadata.Name], obj = o, o
			case "v1/Secret":
				o := &corev1.Secret{}
				r.secrets[meta.Metadata.Name], obj = o, o
			case "v1/PersistentVolumeClaim":
				o := &corev1.PersistentVolumeClaim{}
				r.pvcs[meta.Metadata.Name], obj = o, o
			case "policy/v1/PodDisruptionBudget":
				o := &policyv1.PodDisruptionBudget{}
				r.pdbs[meta.Metadata.Name], obj = o, o
			case "networking.k8s.io/v1/Ingress":
				o := &networkingv1.Ingress{}
				r.ingresses[meta.Metadata.Name], obj = o, o
			default:
				t.Fatalf("%s: unexpected object %s %s", name, key, meta.Metadata.Name)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s: %s %s does not decode strictly: %v\n%s", name, key, meta.Metadata.Name, err, doc)
			}
			r.objectsTotal++
		}
	}
	return r, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func envOf(c corev1.Container) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		m[e.Name] = e
	}
	return m
}

// checkPod checks what every pod of the chart must have: the hardened security context, a
// gantry command with flags and GANTRY_* variables it knows, probes on declared ports, mounts of
// declared volumes, and Secrets that are either rendered or named in the values.
func checkPod(t *testing.T, r *rendered, where string, spec corev1.PodSpec, wantCommand, readyPath string, externalSecrets []string) {
	t.Helper()
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("%s: pod may run as root: %+v", where, psc)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: mounts a service account token it does not use", where)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: %d containers", where, len(spec.Containers))
	}
	c := spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, corev1.Capability("ALL")) {
		t.Errorf("%s: container security context %+v", where, sc)
	}
	if got := checkArgs(t, where, c.Args); got != wantCommand {
		t.Errorf("%s runs 'gantry %s', want %s", where, got, wantCommand)
	}
	var envNames []string
	for _, e := range c.Env {
		envNames = append(envNames, e.Name)
		if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil {
			name := ref.SecretKeyRef.Name
			if s, ok := r.secrets[name]; ok {
				if _, ok := s.StringData[ref.SecretKeyRef.Key]; !ok {
					t.Errorf("%s: %s reads key %q that Secret %s lacks", where, e.Name, ref.SecretKeyRef.Key, name)
				}
			} else if !slices.Contains(externalSecrets, name) {
				t.Errorf("%s: %s reads Secret %s, neither rendered nor named in the values", where, e.Name, name)
			}
		}
	}
	checkEnv(t, where, wantCommand, envNames)
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: resources %+v", where, c.Resources)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != readyPath {
		t.Errorf("%s: readiness probe %+v, want GET %s", where, c.ReadinessProbe, readyPath)
	}
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
		if p == nil {
			continue
		}
		if _, ok := ports[p.HTTPGet.Port.StrVal]; !ok {
			t.Errorf("%s: probe on port %q, not a container port %v", where, p.HTTPGet.Port.String(), ports)
		}
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	writable := map[string]bool{}
	for _, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			t.Errorf("%s: mounts undeclared volume %s", where, m.Name)
			continue
		}
		if !m.ReadOnly {
			writable[m.MountPath] = true
		}
		if v.PersistentVolumeClaim != nil {
			if _, ok := r.pvcs[v.PersistentVolumeClaim.ClaimName]; !ok {
				t.Errorf("%s: claim %s is not rendered", where, v.PersistentVolumeClaim.ClaimName)
			}
		}
		if v.Secret != nil && !slices.Contains(externalSecrets, v.Secret.SecretName) {
			if _, ok := r.secrets[v.Secret.SecretName]; !ok {
				t.Errorf("%s: Secret volume %s neither rendered nor named in the values", where, v.Secret.SecretName)
			}
		}
	}
	// The root filesystem is read-only: where gantry writes must be volumes.
	for _, dir := range []string{"/var/lib/gantry", "/tmp"} {
		if !writable[dir] {
			t.Errorf("%s: %s is not a writable volume", where, dir)
		}
	}
	for _, k := range []string{"GANTRY_DATA_DIR", "GANTRY_CACHE_DIR"} {
		if e, ok := envOf(c)[k]; ok && !strings.HasPrefix(e.Value, "/var/lib/gantry/") {
			t.Errorf("%s: %s=%s is not on the writable volume", where, k, e.Value)
		}
	}
}

// checkServices checks that every Service selects pods the chart makes, on ports they declare.
func checkServices(t *testing.T, r *rendered) {
	t.Helper()
	type pod struct {
		labels map[string]string
		ports  map[string]bool
	}
	var pods []pod
	add := func(labels map[string]string, spec corev1.PodSpec) {
		p := pod{labels, map[string]bool{}}
		for _, c := range spec.Containers {
			for _, cp := range c.Ports {
				p.ports[cp.Name] = true
			}
		}
		pods = append(pods, p)
	}
	for _, d := range r.deployments {
		add(d.Spec.Template.Labels, d.Spec.Template.Spec)
	}
	for _, d := range r.daemonSets {
		add(d.Spec.Template.Labels, d.Spec.Template.Spec)
	}
	for name, s := range r.services {
		found := false
		for _, p := range pods {
			matches := len(s.Spec.Selector) > 0
			for k, v := range s.Spec.Selector {
				matches = matches && p.labels[k] == v
			}
			if !matches {
				continue
			}
			found = true
			for _, sp := range s.Spec.Ports {
				if !p.ports[sp.TargetPort.StrVal] {
					t.Errorf("Service %s: target port %q is not a container port", name, sp.TargetPort.String())
				}
			}
		}
		if !found {
			t.Errorf("Service %s selects no pod of the chart", name)
		}
	}
	for name, i := range r.ingresses {
		for _, rule := range i.Spec.Rules {
			for _, p := range rule.HTTP.Paths {
				s, ok := r.services[p.Backend.Service.Name]
				if !ok || !slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == p.Backend.Service.Port.Name }) {
					t.Errorf("Ingress %s: backend %s port %q is not rendered", name, p.Backend.Service.Name, p.Backend.Service.Port.Name)
				}
			}
		}
	}
	for name, p := range r.pdbs {
		matched := false
		for _, pd := range pods {
			ok := true
			for k, v := range p.Spec.Selector.MatchLabels {
				ok = ok && pd.labels[k] == v
			}
			matched = matched || ok
		}
		if !matched {
			t.Errorf("PodDisruptionBudget %s selects no pod", name)
		}
	}
}

func TestHelmChartDefaults(t *testing.T) {
	r, err := render(t, "")
	if err != nil {
		t.Fatal(err)
	}
	cp := r.deployments["gantry-control-plane"]
	rt := r.deployments["gantry-runtime"]
	if cp == nil || rt == nil {
		t.Fatalf("deployments %v", r.deployments)
	}
	checkPod(t, r, "control plane", cp.Spec.Template.Spec, "serve", "/readyz", nil)
	// The runtime waits for the certificate Secret the user creates (NOTES say how).
	checkPod(t, r, "runtime", rt.Spec.Template.Spec, "runtime", "/status/ready", []string{"gantry-runtime-certificate"})
	checkServices(t, r)

	// Embedded SQLite: one replica on a claim, replaced (not rolled) so two never share it.
	if *cp.Spec.Replicas != 1 || cp.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("control plane: %d replicas, strategy %q", *cp.Spec.Replicas, cp.Spec.Strategy.Type)
	}
	if _, ok := r.pvcs["gantry-data"]; !ok {
		t.Errorf("no data claim: %v", r.pvcs)
	}
	cpEnv := envOf(cp.Spec.Template.Spec.Containers[0])
	if _, ok := cpEnv["GANTRY_DATABASE_URL"]; ok {
		t.Error("GANTRY_DATABASE_URL set without a database")
	}
	// The runtimes dial the cluster Service by the name the listener's certificate carries.
	endpoint := "gantry-cluster." + namespace + ".svc:8005"
	if got := cpEnv["GANTRY_CLUSTER_ENDPOINT"].Value; got != "https://"+endpoint {
		t.Errorf("cluster endpoint %q", got)
	}
	if got := envOf(rt.Spec.Template.Spec.Containers[0])["GANTRY_CONTROL_PLANE"].Value; got != endpoint {
		t.Errorf("runtime control plane %q, want %q", got, endpoint)
	}
	if s := r.services["gantry-cluster"]; s == nil || s.Spec.Ports[0].Port != 8005 || s.Spec.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("cluster service %+v", s)
	}
	if _, ok := r.pdbs["gantry-control-plane"]; ok {
		t.Error("a budget on a single control plane would block node drains")
	}
	if p := r.pdbs["gantry-runtime"]; p == nil || p.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("runtime budget %+v", p)
	}
	if len(r.ingresses) != 0 || len(r.daemonSets) != 0 || len(r.secrets) != 0 {
		t.Errorf("defaults render ingresses %d, daemon sets %d, secrets %d", len(r.ingresses), len(r.daemonSets), len(r.secrets))
	}
	for _, want := range []string{"kubectl -n gateways create secret generic gantry-runtime-certificate", "gantry certificates generate", "Admin token"} {
		if !strings.Contains(r.notes, want) {
			t.Errorf("NOTES lack %q:\n%s", want, r.notes)
		}
	}
	// The certificate command NOTES print is a real one.
	for line := range strings.SplitSeq(r.notes, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "gantry" {
			var args []string
			for _, a := range f[1:] {
				args = append(args, strings.Trim(a, `"`))
			}
			checkArgs(t, "NOTES", args)
		}
	}
}

func TestHelmChartSwitches(t *testing.T) {
	values := readFile(t, "deploy/test/testdata/values-ha.yaml")
	r, err := render(t, values)
	if err != nil {
		t.Fatal(err)
	}
	external := []string{"gantry-postgres", "gantry-admin", "edge-runtime-cert"}
	cp := r.deployments["gantry-control-plane"]
	rt := r.daemonSets["gantry-runtime"]
	if cp == nil || rt == nil || len(r.deployments) != 1 {
		t.Fatalf("deployments %v, daemon sets %v", r.deployments, r.daemonSets)
	}
	checkPod(t, r, "control plane", cp.Spec.Template.Spec, "serve", "/readyz", external)
	checkPod(t, r, "runtime", rt.Spec.Template.Spec, "runtime", "/status/ready", external)
	checkServices(t, r)

	if *cp.Spec.Replicas != 3 || cp.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		t.Errorf("control plane: %d replicas, strategy %q", *cp.Spec.Replicas, cp.Spec.Strategy.Type)
	}
	c := cp.Spec.Template.Spec.Containers[0]
	if c.Image != "registry.example.com/gantry:v1.2.3" {
		t.Errorf("image %q", c.Image)
	}
	env := envOf(c)
	for name, want := range map[string][2]string{"GANTRY_DATABASE_URL": {"gantry-postgres", "url"}, "GANTRY_ADMIN_TOKEN": {"gantry-admin", "token"}} {
		ref := env[name].ValueFrom
		if ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != want[0] || ref.SecretKeyRef.Key != want[1] {
			t.Errorf("%s from %+v, want Secret %s key %s", name, ref, want[0], want[1])
		}
	}
	if env["GANTRY_REVISION_RETENTION_COUNT"].Value != "200" || env["GANTRY_CLUSTER_ENDPOINT"].Value != "https://cluster.gantry.example.com:8005" {
		t.Errorf("extra env or endpoint missing: %v", env)
	}
	if cp.Spec.Template.Spec.Volumes[0].EmptyDir == nil || len(r.pvcs) != 0 {
		t.Errorf("PostgreSQL needs no claim: volumes %+v, claims %v", cp.Spec.Template.Spec.Volumes, r.pvcs)
	}
	if p := r.pdbs["gantry-control-plane"]; p == nil || p.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("control plane budget %+v", p)
	}
	if s := r.services["gantry-cluster"]; s.Spec.Type != corev1.ServiceTypeLoadBalancer || s.Annotations["service.beta.kubernetes.io/aws-load-balancer-type"] != "nlb" {
		t.Errorf("cluster service %+v", s)
	}
	ing := r.ingresses["gantry-api"]
	if ing == nil || *ing.Spec.IngressClassName != "nginx" || ing.Spec.TLS[0].SecretName != "gantry-api-tls" || ing.Spec.Rules[0].Host != "gantry.example.com" {
		t.Errorf("ingress %+v", ing)
	}
	rc := rt.Spec.Template.Spec.Containers[0]
	renv := envOf(rc)
	if renv["GANTRY_LABEL"].Value != "tier=edge,zone=eu-1" {
		t.Errorf("labels %q", renv["GANTRY_LABEL"].Value)
	}
	if renv["GANTRY_HOSTNAME"].ValueFrom == nil || renv["GANTRY_HOSTNAME"].ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("hostname %+v", renv["GANTRY_HOSTNAME"])
	}
	if rt.Spec.Template.Spec.NodeSelector["node-role.example.com/edge"] != "true" || len(rt.Spec.Template.Spec.Tolerations) != 1 {
		t.Errorf("daemon set placement %+v", rt.Spec.Template.Spec)
	}
	if rt.Spec.Template.Spec.ImagePullSecrets[0].Name != "registry-credentials" {
		t.Errorf("pull secrets %+v", rt.Spec.Template.Spec.ImagePullSecrets)
	}
	if len(r.secrets) != 0 {
		t.Errorf("existing Secrets given, yet the chart makes %v", r.secrets)
	}
}

func TestHelmChartValueSecretsAndErrors(t *testing.T) {
	t.Run("URL and token in the values", func(t *testing.T) {
		r, err := render(t, "controlPlane:\n  replicas: 2\n  database:\n    url: postgres://g:p@db:5432/g\n  adminToken:\n    value: gpat_x\n")
		if err != nil {
			t.Fatal(err)
		}
		cp := r.deployments["gantry-control-plane"]
		checkPod(t, r, "control plane", cp.Spec.Template.Spec, "serve", "/readyz", nil)
		if s := r.secrets["gantry-database"]; s == nil || s.StringData["database-url"] != "postgres://g:p@db:5432/g" {
			t.Errorf("database Secret %+v", s)
		}
		if s := r.secrets["gantry-admin-token"]; s == nil || s.StringData["admin-token"] != "gpat_x" {
			t.Errorf("admin token Secret %+v", s)
		}
		if cp.Spec.Template.Annotations["checksum/secrets"] == "" {
			t.Error("pods do not roll when the chart's Secrets change")
		}
	})
	cases := []struct{ name, values, wantErr string }{
		{"replicas without PostgreSQL", "controlPlane:\n  replicas: 2\n", "needs PostgreSQL"},
		{"unknown runtime kind", "runtime:\n  kind: StatefulSet\n", "use Deployment or DaemonSet"},
		{"runtime alone without an address", "controlPlane:\n  enabled: false\n", "runtime.controlPlane is required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := render(t, c.values)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error %v, want %q", err, c.wantErr)
			}
		})
	}
	t.Run("runtime alone", func(t *testing.T) {
		r, err := render(t, "controlPlane:\n  enabled: false\nruntime:\n  controlPlane: cp1.example.com:8005,cp2.example.com:8005\n")
		if err != nil {
			t.Fatal(err)
		}
		if len(r.deployments) != 1 || r.deployments["gantry-runtime"] == nil || len(r.services) != 1 {
			t.Fatalf("deployments %v services %v", r.deployments, r.services)
		}
		if got := envOf(r.deployments["gantry-runtime"].Spec.Template.Spec.Containers[0])["GANTRY_CONTROL_PLANE"].Value; got != "cp1.example.com:8005,cp2.example.com:8005" {
			t.Errorf("control plane %q", got)
		}
	})
}

// TestHelmLint runs `helm lint --strict`'s checks (chart metadata, values, templates rendered
// with missing values as errors) with the default values and with the switches.
func TestHelmLint(t *testing.T) {
	for _, valuesFile := range []string{"", "testdata/values-ha.yaml"} {
		t.Run(fmt.Sprintf("values %q", valuesFile), func(t *testing.T) {
			vals := map[string]any{}
			if valuesFile != "" {
				v, err := chartutil.ReadValuesFile(valuesFile)
				if err != nil {
					t.Fatal(err)
				}
				vals = v
			}
			linter := lint.All(chartDir, vals, namespace, true)
			for _, m := range linter.Messages {
				if m.Severity > support.InfoSev {
					t.Errorf("%s", m)
				} else {
					t.Logf("%s", m)
				}
			}
		})
	}
}
