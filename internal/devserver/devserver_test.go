package devserver

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/internal/testport"
)

func port(t *testing.T) int { return testport.Free(t) }

func dial(t *testing.T, s *Server) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: s.FrontendAddress(), Namespace: "default"})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func waitWorkflow(ctx workflow.Context) error {
	return workflow.Sleep(ctx, time.Hour)
}

func TestDevServerKeepsWorkflowsAcrossARestartAndServesTheUI(t *testing.T) {
	dir := t.TempDir()
	o := Options{DataDir: dir, Port: port(t), UIPort: port(t),
		SearchAttributes: map[string]enumspb.IndexedValueType{"BackupItemState": enumspb.INDEXED_VALUE_TYPE_KEYWORD}}
	s, err := Start(o)
	require.NoError(t, err)

	c := dial(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	attrs, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "default"})
	require.NoError(t, err)
	assert.Equal(t, enumspb.INDEXED_VALUE_TYPE_KEYWORD, attrs.GetCustomAttributes()["BackupItemState"])

	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "persisted", TaskQueue: "nobody"}, waitWorkflow)
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		resp, err := http.Get(s.UIAddress())
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 100*time.Millisecond, "the Web UI answers on %s", s.UIAddress())

	_, err = Start(Options{DataDir: dir, Port: port(t)})
	assert.ErrorIs(t, err, ErrDataDirInUse, "a second instance on the same data directory is refused")

	s.Stop()
	s, err = Start(o)
	require.NoError(t, err, "the same ports and data directory are usable after a clean stop")
	defer s.Stop()
	c = dial(t, s)
	desc, err := c.DescribeWorkflowExecution(ctx, "persisted", run.GetRunID())
	require.NoError(t, err)
	assert.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, desc.GetWorkflowExecutionInfo().GetStatus(), "the workflow survived the restart")

	// Histories hold what every item is and does: the worker's user alone
	// reads them.
	info, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm(), "the data directory is private")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		info, err := e.Info()
		require.NoError(t, err)
		if e.Type().IsRegular() {
			assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "%s is private", e.Name())
		}
	}
	assert.FileExists(t, filepath.Join(dir, DatabaseFile))
}

func TestDevServerRefusesAPortInUseWithOneSentence(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	_, err = Start(Options{DataDir: t.TempDir(), Port: busy})
	require.Error(t, err)
	assert.Equal(t, "port "+strconv.Itoa(busy)+" on 127.0.0.1 is in use: stop what holds it or choose another with --port", err.Error())
}
