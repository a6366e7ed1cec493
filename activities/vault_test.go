package activities

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"

	"recoveryvault/workflows/protocol"
)

// TestListedItemsAreConfirmedWithTheirWorkflows: visibility lags, so an
// item purged a moment ago may still be listed as running. What deleteVault
// counts is confirmed with each workflow: a completed item, or a workflow
// of another type under an item's ID, holds nothing the vault must wait for.
func TestListedItemsAreConfirmedWithTheirWorkflows(t *testing.T) {
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	c := ts.GetDefaultClient()
	w := worker.New(c, "confirm", worker.Options{})
	waits := func(ctx workflow.Context) error {
		workflow.GetSignalChannel(ctx, "end").Receive(ctx, nil)
		return nil
	}
	w.RegisterWorkflowWithOptions(waits, workflow.RegisterOptions{Name: "BackupItem"})
	w.RegisterWorkflowWithOptions(waits, workflow.RegisterOptions{Name: "Impostor"})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := func(id, typ string) client.WorkflowRun {
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: "confirm"}, typ)
		require.NoError(t, err)
		return run
	}
	running := start("backup-item/v/running", "BackupItem")
	purged := start("backup-item/v/purged", "BackupItem")
	require.NoError(t, c.SignalWorkflow(ctx, purged.GetID(), "", "end", nil))
	require.NoError(t, purged.Get(ctx, nil))
	start("backup-item/v/impostor", "Impostor")

	a := &Activities{Client: c}
	// Listed by workflow ID: these items, like one taking its first
	// backup, have published no search attributes.
	require.Eventually(t, func() bool {
		listed, err := a.listVaultItems(ctx, "v")
		return err == nil && len(listed) == 1 && listed[0].WorkflowID == running.GetID()
	}, 20*time.Second, 100*time.Millisecond, "the running item, and only it, is what the vault counts")
	for id, want := range map[string]bool{
		running.GetID():           true,
		purged.GetID():            false,
		"backup-item/v/impostor":  false,
		"backup-item/v/never-was": false,
	} {
		// As visibility might still list it: running, with its old state.
		got, err := a.confirmRunning(ctx, protocol.ListedItem{WorkflowID: id, ProtectionState: "Protected", Running: true})
		require.NoError(t, err, id)
		assert.Equal(t, want, got != nil, id)
		if got != nil {
			assert.True(t, got.Running)
			assert.Equal(t, id, got.WorkflowID)
		}
	}
}
