// Package backupworker wires the BackupItem and Vault workflows and their
// activities to a Temporal worker; the worker command and the tests share it.
package backupworker

import (
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/activities"
	"recoveryvault/store"
	"recoveryvault/workflows"
)

// New returns a worker for the backup task queue: recovery points in st,
// alerts through notifier (log lines when nil), and the worker's settings.
func New(c client.Client, st *store.Store, notifier activities.Notifier, s workflows.Settings) worker.Worker {
	w := worker.New(c, workflows.TaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.NewBackupItem(s), workflow.RegisterOptions{Name: workflows.WorkflowType})
	w.RegisterWorkflowWithOptions(workflows.NewVault(s), workflow.RegisterOptions{Name: workflows.VaultWorkflowType})
	w.RegisterActivity(&activities.Activities{Store: st, Client: c, Notifier: notifier, Settings: s})
	return w
}
