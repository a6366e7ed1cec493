package backupworker

import (
	"os"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
	"recoveryvault/workflows/vault"
)

// ReplayHistoryFile replays a saved history (JSON, as `temporal workflow
// show --output json` writes it) of the workflow workflowID against this
// code. An error means the code would break items that are running now:
// fix it, or version the change.
func ReplayHistoryFile(path, workflowID string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	history, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	if err != nil {
		return err
	}
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(item.BackupItem, workflow.RegisterOptions{Name: protocol.WorkflowType})
	r.RegisterWorkflowWithOptions(vault.Vault, workflow.RegisterOptions{Name: protocol.VaultWorkflowType})
	return r.ReplayWorkflowHistoryWithOptions(nil, history, worker.ReplayWorkflowHistoryOptions{
		OriginalExecution: workflow.Execution{ID: workflowID, RunID: "replay"},
	})
}
