package provision

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"text/template"

	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/store"
)

// enrollmentToken is the shape of an enrollment token (gent_<secret>.<hex SHA-256 of the cluster
// CA>); anything else is refused before it is written into a manifest.
var enrollmentToken = regexp.MustCompile(`^gent_[A-Za-z0-9_-]+\.[0-9A-Fa-f]{64}$`)

// manifestTemplate is a Secret with the token, a Deployment of one runtime that enrolls with it,
// and a Service in front of the proxy. Every value is inserted as a JSON string, which YAML
// reads as a double-quoted scalar, so no value can change the document's structure.
var manifestTemplate = template.Must(template.New("manifest").Funcs(template.FuncMap{"q": quote}).Parse(`# Gantry runtime instance of runtime group {{q .Group.Name}} ({{.Group.ID}}).
#   kubectl apply -f gantry-runtime.yaml
# The runtime enrolls with the token on its first start and keeps its certificate in the
# "state" volume. That volume is an emptyDir, so a pod that is replaced enrolls again: create the
# token with max_uses above the number of replacements you expect, or use a PersistentVolumeClaim.
apiVersion: v1
kind: Secret
metadata:
  name: gantry-runtime-enrollment
  labels:
    app.kubernetes.io/name: gantry-runtime
    gantry.dev/runtime-group: {{q .Group.ID}}
type: Opaque
stringData:
  token: {{q .Token}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: gantry-runtime
  labels:
    app.kubernetes.io/name: gantry-runtime
    gantry.dev/runtime-group: {{q .Group.ID}}
spec:
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: gantry-runtime
  template:
    metadata:
      labels:
        app.kubernetes.io/name: gantry-runtime
        gantry.dev/runtime-group: {{q .Group.ID}}
    spec:
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        fsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: runtime
          image: {{q .Image}}
          args:
            - runtime
            - --enroll
            - $(GANTRY_ENROLL_TOKEN)
            - --control-plane
            - {{q .Endpoint}}
            - --cache-dir
            - /var/lib/gantry
          env:
            - name: GANTRY_ENROLL_TOKEN
              valueFrom:
                secretKeyRef:
                  name: gantry-runtime-enrollment
                  key: token
          ports:
            - name: proxy
              containerPort: 8000
            - name: proxy-tls
              containerPort: 8443
            - name: status
              containerPort: 8100
          readinessProbe:
            httpGet:
              path: /status/ready
              port: status
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
          volumeMounts:
            - name: state
              mountPath: /var/lib/gantry
      volumes:
        - name: state
          emptyDir: {}
---
apiVersion: v1
kind: Service
metadata:
  name: gantry-runtime
  labels:
    app.kubernetes.io/name: gantry-runtime
    gantry.dev/runtime-group: {{q .Group.ID}}
spec:
  selector:
    app.kubernetes.io/name: gantry-runtime
  ports:
    - name: proxy
      port: 8000
      targetPort: proxy
    - name: proxy-tls
      port: 8443
      targetPort: proxy-tls
`))

// quote writes s as a JSON string, a valid YAML double-quoted scalar.
func quote(s string) string {
	b, _ := json.Marshal(s) // a string always encodes
	return string(b)
}

type manifestData struct {
	Group    store.RuntimeGroup
	Token    string
	Image    string
	Endpoint string
}

// Manifest renders the Kubernetes manifest of a runtime of g that enrolls with token and
// connects to endpoint.
func Manifest(g store.RuntimeGroup, token, endpoint, image string) ([]byte, error) {
	var b strings.Builder
	if err := manifestTemplate.Execute(&b, manifestData{Group: g, Token: token, Image: image, Endpoint: endpoint}); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

func (s *Service) manifestHandler(m Mounter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, err := m.LookupGroup(r, r.PathValue("groupId"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		token := r.URL.Query().Get("token")
		if !enrollmentToken.MatchString(token) {
			rule, reason := "required", "is required: create an enrollment token with POST "+strings.TrimSuffix(r.URL.Path, "/kubernetes-manifest")+"/enrollment-tokens"
			if token != "" {
				rule, reason = "pattern", "must be a whole enrollment token: gent_<secret>.<CA fingerprint>"
			}
			api.WriteProblem(w, r, &api.Problem{Status: http.StatusBadRequest, Detail: "The manifest needs the enrollment token its runtime starts with.",
				InvalidParameters: []api.InvalidParameter{{Field: "token", Rule: rule, Reason: reason, Source: "query"}}})
			return
		}
		body, err := Manifest(g, token, s.opts.ClusterEndpoint, s.opts.Image)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "text/yaml; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(body) //nolint:gosec // YAML of quoted values, sent as text/yaml with nosniff, never HTML

	})
}

// fail answers problems as they are and anything else as a server error.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	var p *api.Problem
	if !errors.As(err, &p) {
		p = api.ServerProblem(w, r, s.log, err)
	}
	api.WriteProblem(w, r, p)
}
