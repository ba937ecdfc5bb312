// Package deploytest checks Gantry's deployment artefacts against the binary they run: the root
// Dockerfile and .dockerignore, deploy/docker-compose.yml, the systemd units in deploy/systemd and
// the Helm chart in deploy/helm/gantry. It is its own module so that the main module does not
// depend on Helm and the Kubernetes API types.
package deploytest
