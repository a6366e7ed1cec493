// Package deploy holds what docker-compose.yml mounts into the Temporal
// containers; its test checks the compose file with the Compose
// specification's own loader.
package deploy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// load reads a compose file as docker compose does, with paths relative to
// the repository's root.
func load(t *testing.T, path string) (*types.Project, error) {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: path}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("recoveryvault", true) })
}

// problems lists what must hold of the topology and does not.
func problems(p *types.Project) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	want := []string{"postgresql", "temporal-schema", "temporal", "temporal-namespace", "temporal-ui", "s3", "s3-bucket", "worker"}
	for _, name := range want {
		if _, ok := p.Services[name]; !ok {
			bad("service %s is missing", name)
		}
	}
	for name, s := range p.Services {
		switch {
		case s.Build != nil && s.Image == "":
		case s.Image == "":
			bad("service %s has neither an image nor a build", name)
		case !strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest"):
			bad("service %s: image %q is not pinned to a version", name, s.Image)
		}
		for _, port := range s.Ports {
			if port.Published != "" && port.HostIP != "127.0.0.1" {
				bad("service %s publishes port %s on %q, not 127.0.0.1", name, port.Published, port.HostIP)
			}
		}
	}
	completed := func(service, dep string) {
		if d, ok := p.Services[service].DependsOn[dep]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
			bad("%s does not wait for %s to complete successfully", service, dep)
		}
	}
	completed("worker", "temporal-schema")
	completed("worker", "temporal-namespace")
	completed("temporal", "temporal-schema")
	for _, name := range []string{"postgresql", "temporal"} {
		if hc := p.Services[name].HealthCheck; hc == nil || hc.Disable || len(hc.Test) == 0 {
			bad("service %s has no healthcheck", name)
		}
	}
	if !slices.ContainsFunc(p.Services["postgresql"].Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeVolume && p.Volumes[v.Source].Name != ""
	}) {
		bad("postgresql keeps its data in no named volume")
	}
	w := p.Services["worker"]
	if w.Build == nil || w.ContainerName != "" || len(w.Ports) > 0 {
		bad("worker must be built here and scalable: no container_name, no published port")
	}
	if !strings.HasPrefix(w.Restart, "on-failure") && w.Restart != "always" && w.Restart != "unless-stopped" {
		bad("worker restart policy %q does not restart it on failure", w.Restart)
	}
	// Configured by the standard environments of Temporal and the AWS
	// SDK, the store and its password, and its host roots: nothing else.
	own := []string{"RECOVERYVAULT_STORE", "RECOVERYVAULT_REPOSITORY_PASSWORD_FILE", "RECOVERYVAULT_SOURCE_ROOTS", "RECOVERYVAULT_RESTORE_ROOTS"}
	for k := range w.Environment {
		if !strings.HasPrefix(k, "TEMPORAL_") && !strings.HasPrefix(k, "AWS_") && !slices.Contains(own, k) {
			bad("worker is configured with %s: only the Temporal and AWS environments, the store and its password file, and its roots", k)
		}
	}
	for _, k := range own[2:] {
		if w.Environment[k] == nil {
			bad("worker has no %s: it would refuse every protect or restore", k)
		}
	}
	if store := w.Environment["RECOVERYVAULT_STORE"]; store == nil || !strings.HasPrefix(*store, "s3://") {
		bad("worker keeps its recovery points elsewhere than in a bucket")
	}
	if len(w.Volumes) > 0 {
		bad("worker mounts a volume: workers share the bucket, not a volume")
	}
	if !slices.ContainsFunc(w.Secrets, func(s types.ServiceSecretConfig) bool { return s.Source == "repository-password" }) {
		bad("worker is not given the repository password as a secret")
	}
	completed("worker", "s3-bucket")
	if b := p.Services["s3-bucket"]; len(b.Entrypoint) < 2 || b.Entrypoint[1] != "create" {
		bad("no one-shot job makes the bucket")
	}
	slices.Sort(out)
	return out
}

func TestComposeFileHoldsTheTopology(t *testing.T) {
	p, err := load(t, filepath.Join("..", "docker-compose.yml"))
	require.NoError(t, err)
	assert.Empty(t, problems(p))
	for _, mount := range []string{"deploy/scripts/setup-postgres.sh", "deploy/scripts/create-namespace.sh", "deploy/dynamicconfig/recoveryvault.yaml"} {
		_, err := os.Stat(filepath.Join("..", mount))
		assert.NoError(t, err, "mounted into a container")
	}
}

// TestComposeCheckCatchesABrokenFile breaks the real file one way at a
// time; each must be caught.
func TestComposeCheckCatchesABrokenFile(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join("..", "docker-compose.yml"))
	require.NoError(t, err)
	cases := map[string]struct{ old, new, want string }{
		"a latest image":       {"temporalio/ui:2.54.1", "temporalio/ui:latest", "image \"temporalio/ui:latest\" is not pinned"},
		"an unpinned image":    {"postgres:16.6", "postgres", "image \"postgres\" is not pinned"},
		"a port on every host": {`"127.0.0.1:8080:8080"`, `"8080:8080"`, "publishes port 8080"},
		"no schema wait":       {"      temporal-schema:\n        condition: service_completed_successfully\n      temporal-namespace:", "      temporal-namespace:", "worker does not wait for temporal-schema"},
		"no healthcheck":       {"      test: [\"CMD\", \"nc\", \"-z\", \"localhost\", \"7233\"]", "      disable: true", "service temporal has no healthcheck"},
		"a shared volume":      {"    secrets:\n      - repository-password\n", "    volumes:\n      - /tmp/store:/var/lib/recoveryvault/store\n    secrets:\n      - repository-password\n", "workers share the bucket, not a volume"},
		"no password":          {"    secrets:\n      - repository-password\n", "", "not given the repository password"},
		"a store on disk":      {"RECOVERYVAULT_STORE: s3://backups/recovery-points", "RECOVERYVAULT_STORE: /var/lib/recoveryvault/store", "elsewhere than in a bucket"},
		"no bucket job":        {"      s3-bucket:\n        condition: service_completed_successfully\n", "", "worker does not wait for s3-bucket"},
		"a missing service":    {"  temporal-ui:\n", "  temporal-web:\n", "service temporal-ui is missing"},
		"broken YAML":          {"services:\n", "services:\n  - [\n", "load:"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			require.Contains(t, string(orig), c.old, "the mutation applies")
			path := filepath.Join(t.TempDir(), "docker-compose.yml")
			require.NoError(t, os.WriteFile(path, []byte(strings.Replace(string(orig), c.old, c.new, 1)), 0o644))
			p, err := load(t, path)
			if err != nil {
				assert.Contains(t, "load: "+err.Error(), c.want)
				return
			}
			assert.Contains(t, strings.Join(problems(p), "\n"), c.want)
		})
	}
}
