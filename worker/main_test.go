package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/server/temporaltest"

	"recoveryvault/internal/storetest"
	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
)

// TestWorkerServesItemsFromTheEnvironmentsServerAndStopsCleanly runs the
// worker command's own code against a real server named by the environment,
// as an operator would, protects an item through it and stops it.
func TestWorkerServesItemsFromTheEnvironmentsServerAndStopsCleanly(t *testing.T) {
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	t.Setenv("TEMPORAL_ADDRESS", ts.GetFrontendHostPort())
	t.Setenv("TEMPORAL_NAMESPACE", ts.GetDefaultNamespace())
	store := filepath.Join(t.TempDir(), "store")
	t.Setenv("RECOVERYVAULT_REPOSITORY_PASSWORD", storetest.Password)
	t.Setenv("RECOVERYVAULT_SOURCE_ROOTS", "/nonexistent:"+os.TempDir())
	stop := make(chan any)
	done := make(chan error, 1)
	consoleAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	go func() {
		done <- run(config{dataDir: t.TempDir(), store: store, consoleAddr: consoleAddr, identityHeader: "X-Forwarded-Email"}, io.Discard, stop)
	}()

	src := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(src, "a.txt"), []byte("a"), 0o644))
	c := ts.GetDefaultClient()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The item upserts custom search attributes: the worker must have
	// registered them, or its workflow task would fail forever.
	_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: protocol.WorkflowID("v1", "i1"), TaskQueue: protocol.TaskQueue},
		item.BackupItem, item.ItemInput{VaultID: "v1", ItemID: "i1", SourcePath: src, Policy: protocol.Policy{Frequency: "1h", RetentionDays: 1}})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		v, err := c.QueryWorkflow(ctx, protocol.WorkflowID("v1", "i1"), "", protocol.QueryStatus)
		if err != nil {
			return false
		}
		var st item.Status
		return v.Get(&st) == nil && len(st.RecoveryPoints) == 1
	}, 30*time.Second, 100*time.Millisecond)
	points, err := storetest.At(t, store).List(ctx, "v1", "i1")
	require.NoError(t, err)
	assert.Len(t, points, 1, "the recovery point is in the worker's store")

	// No restore root was given: outside dev mode every restore is refused.
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: protocol.WorkflowID("v1", "i1"), UpdateName: protocol.UpdateRestore,
		WaitForStage: client.WorkflowUpdateStageCompleted,
		Args:         []any{protocol.RestoreRequest{RecoveryPointID: points[0], TargetPath: filepath.Join(t.TempDir(), "out")}}})
	require.NoError(t, err)
	err = h.Get(ctx, nil)
	assert.ErrorContains(t, err, "no restore root", "refused")
	assert.ErrorContains(t, err, "--restore-root DIR", "the refusal names the flag")

	// The console, on in production with --console-addr, knows operators
	// only by the proxy's header.
	get := func(email string) int {
		req, err := http.NewRequest(http.MethodGet, "http://"+consoleAddr+"/vaults/v1/items/i1", nil)
		require.NoError(t, err)
		if email != "" {
			req.Header.Set("X-Forwarded-Email", email)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusUnauthorized, get(""))
	assert.Equal(t, http.StatusOK, get("alice@example.com"))

	close(stop)
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop")
	}
}

func TestOnlyDevModeAndLoadTestsMayShortenTheWindow(t *testing.T) {
	cases := map[string]struct {
		c       config
		refusal string
	}{
		"production, 30 days":                       {config{softDeleteRetention: 30 * 24 * time.Hour}, ""},
		"production, 30 seconds":                    {config{softDeleteRetention: 30 * time.Second}, "is refused outside dev mode"},
		"dev mode, 30 seconds":                      {config{dev: true, softDeleteRetention: 30 * time.Second}, ""},
		"load test, 30 seconds":                     {config{loadTest: true, softDeleteRetention: 30 * time.Second}, ""},
		"load test with the dev server":             {config{dev: true, loadTest: true}, "--load-test is for an existing cluster"},
		"negative":                                  {config{loadTest: true, softDeleteRetention: -time.Second}, "is negative"},
		"a webhook that is not http(s)":             {config{webhookURL: "ftp://x"}, "is not an http(s) URL"},
		"console in production":                     {config{consoleAddr: "127.0.0.1:8234", identityHeader: "X-Forwarded-Email"}, ""},
		"console in production, no identity header": {config{consoleAddr: "127.0.0.1:8234"}, "--console-addr needs --identity-header outside dev mode"},
		"console in dev mode, names in a cookie":    {config{dev: true, consolePort: 8234}, ""},
		"an identity header that is no header":      {config{consoleAddr: ":8234", identityHeader: "X Email:"}, "is not a header name"},
		"a console port that is no port":            {config{dev: true, consolePort: 70000}, "is not a port"},
		"dev mode's console on loopback":            {config{dev: true, consoleAddr: "localhost:9000"}, ""},
		"dev mode's console on the network":         {config{dev: true, consoleAddr: "0.0.0.0:8234"}, "is reachable from other machines"},
		"dev mode's console on every interface":     {config{dev: true, consoleAddr: ":8234"}, "is reachable from other machines"},
		"dev mode's console behind a proxy":         {config{dev: true, consoleAddr: ":8234", identityHeader: "X-Forwarded-Email"}, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := c.c.validate()
			if c.refusal == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, c.refusal)
		})
	}
}

// TestABusyPortRefusesTheStartAndLeavesNothingBehind: a start refused
// because one of its ports is taken creates no data directory, no lock and
// no store.
func TestABusyPortRefusesTheStartAndLeavesNothingBehind(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	for name, c := range map[string]config{
		"frontend": {dev: true, port: busy, uiPort: freePort(t), consolePort: freePort(t)},
		"web ui":   {dev: true, port: freePort(t), uiPort: busy, consolePort: freePort(t)},
		"console":  {dev: true, port: freePort(t), uiPort: freePort(t), consolePort: busy},
	} {
		t.Run(name, func(t *testing.T) {
			c.dataDir = filepath.Join(t.TempDir(), "data")
			err := run(c, io.Discard, make(chan any))
			require.Error(t, err)
			assert.Contains(t, err.Error(), fmt.Sprintf("port %d on 127.0.0.1 is in use: stop what holds it or choose another with --", busy))
			assert.NoDirExists(t, c.dataDir, "nothing was created")
		})
	}
}

// TestUsageNamesTheCommand: --help starts with the command's name, not the
// path of a binary in the build cache, and lists the flags.
func TestUsageNamesTheCommand(t *testing.T) {
	var c config
	fs := newFlags(&c)
	var out strings.Builder
	fs.SetOutput(&out)
	fs.Usage()
	assert.True(t, strings.HasPrefix(out.String(), "Usage: worker [flags]\n"), out.String())
	assert.Contains(t, out.String(), "go run ./worker --dev")
	assert.Contains(t, out.String(), "-soft-delete-retention duration")
	assert.NotContains(t, out.String(), "go-build")
	require.NoError(t, fs.Parse([]string{"--dev", "--port", "7300"}))
	assert.True(t, c.dev)
	assert.Equal(t, 7300, c.port)
}

// TestTheRepositoryPasswordComesFromAFileTheEnvironmentOrDevMode: the store
// is encrypted with a password the worker is given; dev mode makes one,
// readable by its owner only, and says where; elsewhere none is refused.
func TestTheRepositoryPasswordComesFromAFileTheEnvironmentOrDevMode(t *testing.T) {
	t.Setenv("RECOVERYVAULT_REPOSITORY_PASSWORD", "")
	_, _, err := repositoryPassword(config{dataDir: t.TempDir()})
	assert.EqualError(t, err, "the recovery-point store is encrypted with a repository password, and none was given: "+
		"set RECOVERYVAULT_REPOSITORY_PASSWORD or --repository-password-file FILE, the same on every worker; losing it loses every backup")

	dir := t.TempDir()
	pw, created, err := repositoryPassword(config{dev: true, dataDir: dir})
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "repository.password"), created)
	assert.GreaterOrEqual(t, len(pw), 40, "a random secret")
	info, err := os.Stat(created)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	again, created, err := repositoryPassword(config{dev: true, dataDir: dir})
	require.NoError(t, err)
	assert.Equal(t, pw, again, "the same password on the next start")
	assert.Empty(t, created)

	file := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(file, []byte("from a file\n"), 0o600))
	pw, _, err = repositoryPassword(config{passwordFile: file})
	require.NoError(t, err)
	assert.Equal(t, "from a file", pw)
	require.NoError(t, os.WriteFile(file, []byte("\n"), 0o600))
	_, _, err = repositoryPassword(config{passwordFile: file})
	assert.ErrorContains(t, err, "is empty")

	t.Setenv("RECOVERYVAULT_REPOSITORY_PASSWORD", "from the environment")
	pw, _, err = repositoryPassword(config{dataDir: t.TempDir()})
	require.NoError(t, err)
	assert.Equal(t, "from the environment", pw)
}
